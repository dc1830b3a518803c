"""The web app over a folder of study runs (FastAPI + a static page; needs ``pip install 'synthmed[web]'``).

    from synthmed.serve import create_app
    uvicorn.run(create_app(Path("runs")), host="127.0.0.1", port=8000)

``synthmed serve --runs DIR`` does the same. It binds 127.0.0.1 by default (only this machine can
connect); ``--host 0.0.0.0`` exposes it to the network — it has no authentication, so only do that
on a trusted network or behind a reverse proxy that adds it.

Requests whose Host header is not a loopback name or the bound host get 400 (a DNS-rebinding page
cannot read the API); add names with ``SYNTHMED_ALLOWED_HOSTS=name1,name2``. Every response, errors
included, carries a same-origin CSP with ``frame-ancestors 'none'``. Every file read from a run
must lie inside it (links that leave it are refused), and models are loaded from tensors + JSON
only (``synthmed.utils.checkpoint``), never unpickled.
"""

from synthmed.serve.app import create_app

__all__ = ["create_app"]
