"""The web app over a folder of study runs (FastAPI + a static page; needs ``pip install 'synthmed[web]'``).

    from synthmed.serve import create_app
    uvicorn.run(create_app(Path("runs")), host="127.0.0.1", port=8000)

``synthmed serve --runs DIR`` does the same. It binds 127.0.0.1 by default (only this machine can
connect); ``--host 0.0.0.0`` exposes it to the network — it has no authentication, so only do that
on a trusted network or behind a reverse proxy that adds it.
"""

from synthmed.serve.app import create_app

__all__ = ["create_app"]
