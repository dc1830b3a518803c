"""The ``synthmed`` command line: a thin layer over the Python API.

Every user-caused error prints one line (``error: ...``) and exits 1; no traceback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Optional

import typer

from synthmed.errors import SynthmedError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Does synthetic data from a generative model help a few-shot medical image classifier?")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: list what is known and present, show one.")
app.add_typer(data_app, name="data")

DataDir = typer.Option(None, "--data-dir", help="Folder with dataset files (default: $SYNTHMED_DATA_DIR, else medmnist's cache).")


def _console():
    from rich.console import Console

    return Console()


def _default_out(prefix: str) -> Path:
    import datetime as dt

    return Path("runs") / f"{prefix}-{dt.datetime.now():%Y%m%d-%H%M%S}"


Offline = typer.Option(False, "--offline", help="Never download; a missing dataset file stops with one line saying where to get it "
                                               "(same as SYNTHMED_OFFLINE=1). Default: fetch missing MedMNIST files (MD5-checked).")


def _check_inputs(cfg, data_dir: Optional[Path], offline: bool) -> None:
    """Before any output or training: the dataset loads (fetched now if missing) and the samples fit it."""
    from synthmed.data.check import check_inputs
    from synthmed.data.files import OFFLINE_ENV

    if offline:
        os.environ[OFFLINE_ENV] = "1"  # read by the data layer in this process and in executor workers
    check_inputs(cfg.dataset.model_dump(), [s.path for s in cfg.samples], data_dir=data_dir)


@contextlib.contextmanager
def _run_folder(out: Path):
    """Remove ``out`` again if this command created it and fails before any stage finished,
    so a config or data error leaves no empty run folder behind."""
    created = not out.exists()
    try:
        yield out
    except BaseException:
        if created and out.is_dir() and not any(out.rglob("stage.json")):
            shutil.rmtree(out, ignore_errors=True)
        raise


# -- run / report ---------------------------------------------------------------------------------
@app.command()
def run(
    config: Optional[Path] = typer.Argument(None, help="Study YAML (default: the embedded default study)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: a new folder under runs/). Re-use it to resume."),
    profile: str = typer.Option("default", "--profile", help="default (five paired draws) | quick (one draw: a first look) | smoke (tiny, for tests) | full (every family) | usage (every way of using synthetic images) | skin (7-class skin lesions, synthmed/configs/skin.yaml)."),
    executor: str = typer.Option("local", "--executor", help="local (default) | ray"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join an existing Ray cluster."),
    data_dir: Optional[Path] = DataDir,
    print_default: bool = typer.Option(False, "--print-default", help="Print the resolved study config as YAML and exit."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads per stage (default: the cores shared out over the workers)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="local executor: stages run side by side in this many processes (default: 2 on a CPU with 2+ cores, 1 on a GPU)."),
    offline: bool = Offline,
):
    """Run a whole study (split → generators → samples → classifiers → metrics → report.html)."""
    from synthmed.config import dump_yaml, load_yaml
    from synthmed.study import load_study_config, make_executor, run_study
    from synthmed.study.runner import default_run_dir

    data = load_yaml(config) if config else None
    cfg = load_study_config(data, profile=profile, source=str(config) if config else "study config")
    if print_default:
        typer.echo(dump_yaml(cfg), nl=False)
        return
    _check_inputs(cfg, data_dir, offline)
    opts = {"address": ray_address} if executor == "ray" else {"workers": workers}
    ex = make_executor(executor, **opts)
    with _run_folder(out or default_run_dir(cfg)) as out:
        manifest = run_study(cfg, out, executor=ex, data_dir=str(data_dir) if data_dir else None,
                             progress=not no_progress, threads=threads)
    _print_summary(out, manifest)


def _print_summary(out: Path, manifest: dict) -> None:
    from rich.table import Table

    from synthmed.runs import load_results, summarize_conditions

    rows = load_results(out)
    con = _console()
    for metric in ("roc_auc", "macro_f1"):
        summary = summarize_conditions(rows, metric)
        if not summary:
            continue
        t = Table(title=f"{metric} (mean over {len(manifest['seeds'])} seed(s); 95 % CI when ≥ 2)")
        for col in ("condition", "generator", "mean", "95 % CI", "Δ vs real"):
            t.add_column(col)
        for s in summary:
            ci = f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s.get("ci_low") is not None else "–"
            d = f"{s['vs_real']['mean_diff']:+.3f}" if s.get("vs_real") else "–"
            t.add_row(s["condition"], s["generator"], f"{s['mean']:.3f}", ci, d)
        con.print(t)
    con.print(f"{manifest['stages_run']} stages run, {manifest['stages_cached']} cached, {manifest['wall_s']:.0f} s")
    con.print(f"report: {out / 'report.html'}")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A study run folder.")):
    """(Re)build report.html of a finished study run."""
    from synthmed.report import write_report

    typer.echo(str(write_report(run_dir)))


# -- data ---------------------------------------------------------------------------------------
@data_app.command("list")
def data_list(data_dir: Optional[Path] = DataDir):
    """Known datasets and whether each is present locally (fits an 80-column terminal)."""
    from rich import box
    from rich.table import Table

    from synthmed.data import list_datasets, resolve_data_dir
    from synthmed.data.files import display_path

    t = Table(title="datasets", box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("name", "classes", "sizes (px)", "present", "kind"):
        t.add_column(col, no_wrap=True, overflow="ellipsis")
    for info in list_datasets(data_dir):
        sizes = ", ".join(map(str, info.sizes)) if info.sizes else "any"
        present = "--path DIR" if info.needs_path else ("yes" if info.present else "no")
        t.add_row(info.name, str(len(info.classes)) if info.classes else "folders", sizes, present, info.kind.split(" or ")[0])
    con = _console()
    con.print(t)
    con.print(f"Files are read from {display_path(resolve_data_dir(data_dir))} (--data-dir or $SYNTHMED_DATA_DIR); "
              "missing MedMNIST files are downloaded there on first use (MD5-checked) unless offline. "
              "'synthmed data show NAME' gives counts and examples.")


@data_app.command("show")
def data_show(
    name: str = typer.Argument(..., help="Dataset name (see 'synthmed data list')."),
    size: int = typer.Option(28, "--size"),
    path: Optional[Path] = typer.Option(None, "--path", help="Folder for layouts read from disk (folder, HAM10000, NIH)."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG grid of examples (default: <name>_examples.png; .png is added when missing)."),
    data_dir: Optional[Path] = DataDir,
):
    """Counts per split and class, and a PNG grid of examples."""
    from rich.table import Table

    from synthmed.data import describe_dataset, load_dataset, save_examples_grid
    from synthmed.errors import ConfigError

    out = out or Path(f"{name}_examples.png")
    if out.suffix.lower() != ".png":
        if out.suffix:
            raise ConfigError(f"--out {out.name}: the examples grid is a PNG; give a name ending in .png")
        out = out.with_name(out.name + ".png")
    data = load_dataset(name, size=size, data_dir=data_dir, path=path)
    desc = describe_dataset(data)
    t = Table(title=f"{name} ({len(data)} images, {data.image_size} px, {data.channels} channel(s))")
    counts = desc.get("counts", {})
    t.add_column("split")
    for c in data.class_names:
        t.add_column(c)
    for split, per_class in counts.items():
        t.add_row(split, *[str(per_class.get(c, 0)) for c in data.class_names])
    _console().print(t)
    png = save_examples_grid(data, out)
    typer.echo(f"examples: {png}")


@app.command()
def split(
    data: str = typer.Option("pneumoniamnist", "--data"),
    shots: int = typer.Option(50, "--shots"),
    seed: int = typer.Option(0, "--seed"),
    protocol: Optional[str] = typer.Option(None, "--eval", help="official | fraction (default: official when the dataset ships a split)."),
    size: int = typer.Option(28, "--size"),
    out: Path = typer.Option(Path("split.json"), "--out"),
    data_dir: Optional[Path] = DataDir,
):
    """Write a few-shot split manifest (JSON) — the input every later stage consumes."""
    from synthmed.data import load_dataset, make_split

    ds = load_dataset(data, size=size, data_dir=data_dir)
    m = make_split(ds, shots=shots, seed=seed, protocol=protocol)
    m.to_json(out)
    typer.echo(f"{out}: " + ", ".join(f"{k}={sum(v.values())}" for k, v in m.counts.items()))


# -- classify / train / sample -------------------------------------------------------------------------
@app.command()
def classify(
    data: str = typer.Option("pneumoniamnist", "--data"),
    shots: int = typer.Option(50, "--shots"),
    model: str = typer.Option("resnet18", "--model", help="resnet18 | resnet50 | vgg16"),
    seed: int = typer.Option(0, "--seed"),
    size: int = typer.Option(28, "--size"),
    stem: Optional[str] = typer.Option(None, "--stem", help="standard | cifar"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps"),
    augment: bool = typer.Option(False, "--augment", help="Classic augmentation (flips, small affine)."),
    out: Optional[Path] = typer.Option(None, "--out"),
    data_dir: Optional[Path] = DataDir,
):
    """Few-shot baseline classifier: split, train, test; prints a metrics table."""
    from synthmed.metrics.classification import format_metrics_table
    from synthmed.study import commands

    over = {k: v for k, v in {"stem": stem, "max_steps": max_steps, "augment": augment or None}.items() if v is not None}
    out = out or _default_out(f"classify-{data}-{model}")
    metrics = commands.classify(data, shots=shots, model=model, seed=seed, out_dir=out, data_dir=data_dir, size=size,
                                **over)
    typer.echo(format_metrics_table(metrics))
    typer.echo(f"outputs: {out}")


@app.command()
def train(
    family: str = typer.Option(..., "--family", help="Generator family: a registered name ('synthmed families' lists them)."),
    data: str = typer.Option("pneumoniamnist", "--data"),
    shots: int = typer.Option(50, "--shots"),
    seed: int = typer.Option(0, "--seed"),
    size: int = typer.Option(28, "--size"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Compute budget in steps (default: the family's)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes"),
    per_class: bool = typer.Option(False, "--per-class", help="GANs: one unconditional GAN per class."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    devices: int = typer.Option(1, "--devices", help="Data-parallel processes via torchrun (gloo on CPU, NCCL on GPUs)."),
    out: Optional[Path] = typer.Option(None, "--out"),
    data_dir: Optional[Path] = DataDir,
):
    """Train one generator family on the k-shot real training images."""
    import subprocess

    from synthmed.distributed import launched_by_torchrun, torchrun_command
    from synthmed.study import commands

    out = out or _default_out(f"train-{family}-{data}")
    if devices > 1 and not launched_by_torchrun():  # relaunch this very command as N ranks
        argv, skip = [], False
        for a in sys.argv[1:]:  # pin --out so every rank writes to the same folder
            if skip or a.startswith("--out="):
                skip = False
                continue
            skip = a == "--out"
            if not skip:
                argv.append(a)
        argv += ["--out", str(out)]
        raise SystemExit(subprocess.call(torchrun_command(devices, argv)))
    over = {k: v for k, v in {"max_steps": max_steps, "max_minutes": max_minutes,
                              "per_class": per_class or None}.items() if v is not None}
    commands.train(family, data, shots=shots, seed=seed, out_dir=out, size=size, data_dir=data_dir, resume=resume,
                   **over)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"generator: {out / 'generator.pt'}")


@app.command()
def families():
    """Registered generator families (from the registry), their default step budget and sampling knobs."""
    from synthmed.generators import get_generator_class, list_generators

    for name in list_generators():
        cls = get_generator_class(name)
        knobs = ", ".join(cls.sample_knobs) or "-"
        typer.echo(f"{name:10s} default max_steps {cls.default_max_steps!s:6s} sample knobs: {knobs}")


@app.command()
def sample(
    run_dir: Path = typer.Argument(..., help="A 'synthmed train' folder (or a generator.pt)."),
    n_per_class: int = typer.Option(200, "--n-per-class"),
    seed: int = typer.Option(0, "--seed"),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps, for families whose sample_knobs have it (ddpm)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance, where declared (ddpm)."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Diffusion sampler, where declared (ddpm): ddim, ddpm, dpm-solver, unipc."),
    bn_stats: Optional[str] = typer.Option(None, "--bn-stats", help="GANs: the EMA generator's BatchNorm statistics: ema (averaged in training) or recompute."),
    out: Path = typer.Option(..., "--out", help="Folder for PNG files, samples.npz and grid.png."),
):
    """Sample a trained generator: PNG files per class + an npz with labels."""
    from synthmed.study import commands

    given = {"steps": steps, "guidance": guidance, "sampler": sampler, "bn_stats": bn_stats}
    knobs = {k: v for k, v in given.items() if v is not None}
    res = commands.sample(run_dir, out, n_per_class=n_per_class, seed=seed, **knobs)
    typer.echo(f"{res['n']} images in {res['wall_s']:.1f} s → {out}")


@app.command()
def evaluate(
    samples: list[Path] = typer.Argument(..., help="Synthetic sets: npz (images, labels), a 'synthmed sample' folder, or a 'synthmed train' folder."),
    data: str = typer.Option("pneumoniamnist", "--data"),
    size: int = typer.Option(28, "--size"),
    shots: int = typer.Option(50, "--shots", help="Real training images per class (must match what the generator saw)."),
    conditions: Optional[str] = typer.Option(None, "--conditions", help="Comma-separated (default: every registered condition)."),
    seeds: int = typer.Option(5, "--seeds", help="Classifier seeds 0..N-1 (mean, 95 % CI, paired tests)."),
    total: int = typer.Option(1200, "--total", help="Synthetic images added, balanced per class."),
    ratios: Optional[str] = typer.Option(None, "--ratios", help="Also sweep real+synthetic at these ratios, e.g. 0.5,1,2,5,10."),
    classifier_steps: Optional[int] = typer.Option(None, "--classifier-steps"),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the k-shot split the generator trained on (its provenance.json says which)."),
    allow_unknown_provenance: bool = typer.Option(False, "--allow-unknown-provenance", help="Accept samples without provenance.json (the report then says leakage cannot be ruled out)."),
    out: Optional[Path] = typer.Option(None, "--out"),
    data_dir: Optional[Path] = DataDir,
    no_progress: bool = typer.Option(False, "--no-progress"),
    offline: bool = Offline,
):
    """Evaluate synthetic images you already have: downstream conditions over seeds, fidelity, memorization."""
    from synthmed.study import load_study_config, run_study

    study = {
        "name": f"evaluate-{data}-{shots}shot",
        "dataset": {"name": data, "size": size},
        "split": {"shots": shots, "per_seed": False, "seed": split_seed},  # the generator's own split, every seed
        "generators": [],
        "samples": [{"path": str(p), "allow_unknown_provenance": allow_unknown_provenance} for p in samples],
        **({"conditions": [c.strip() for c in conditions.split(",") if c.strip()]} if conditions else {}),
        "seeds": list(range(seeds)),
        "synthetic": {"total": total, "ratios": [float(r) for r in ratios.split(",")] if ratios else []},
        "classifier": {"max_steps": classifier_steps} if classifier_steps else {},
    }
    cfg = load_study_config(study, source="evaluate options")
    _check_inputs(cfg, data_dir, offline)
    with _run_folder(out or _default_out(study["name"])) as out:
        manifest = run_study(cfg, out, data_dir=str(data_dir) if data_dir else None, progress=not no_progress)
    _print_summary(out, manifest)


@app.command()
def serve(
    runs: Path = typer.Option(Path("runs"), "--runs", help="Folder of study runs (read-only)."),
    host: str = typer.Option("127.0.0.1", "--host", help="127.0.0.1 (default) keeps it local; 0.0.0.0 exposes it."),
    port: int = typer.Option(8000, "--port"),
):
    """Web app: browse runs, generate images on demand, classify an uploaded image."""
    try:
        import uvicorn

        from synthmed.serve import create_app
    except ModuleNotFoundError as e:
        from synthmed.errors import MissingDependencyError

        raise MissingDependencyError(f"the web app needs {e.name}: pip install 'synthmed[web]'") from None
    uvicorn.run(create_app(runs, host=host), host=host, port=port)


def main() -> None:
    try:
        app()
    except SynthmedError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.secho("interrupted: finished stages are kept; re-run the same command to resume", fg="yellow", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
