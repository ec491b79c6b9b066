"""EoTD Studio: the Gradio app (also the Hugging Face Space's entry point).

    python app.py [--model PATH] [--adapter PATH|none] [--db_url URL] [--port N] [--host H]

Without ``--model`` the app serves the promoted model version of the store, or the default
student (SmolLM2-135M-Instruct with the adapter shipped in ``models/``).

Who may do what follows ``studio.identity``: with no accounts on 127.0.0.1 you are the admin;
with accounts (``python -m db.users add``) people sign in; on a Space, with Hugging Face OAuth.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

from db.backup import open_store_with_backups
from db.settings import StoreSettings
from eotd.settings import EngineSettings
from studio.handlers import Studio
from studio.identity import Access
from studio.shipped import register_shipped
from studio.ui import build_app, launch
from training.config import load_config


@dataclass
class AppConfig:
    """Serve EoTD Studio."""

    model: str = ""  # base model folder, .gguf or hub id; "" = promoted version, else the default
    adapter: str = "default"  # "default" (models/ for the default base), "none", or a folder
    db_url: str = ""  # SQLAlchemy URL; "" = EOTD_DB_URL or the SQLite file in EOTD_DATA_DIR
    host: str = ""  # "" = Gradio's default (GRADIO_SERVER_NAME, else 127.0.0.1)
    port: int = 0  # 0 = Gradio's default (GRADIO_SERVER_PORT, else 7860)
    max_new_tokens: int = 256  # per thought
    max_batch: int = 16  # concurrent solves batched into one generate (1: one at a time)
    # "torch", "ct2" (CTranslate2: fast on a CPU), "auto" ($EOTD_ENGINE, else ct2 on a CPU)
    engine: str = "auto"
    precision: str = "auto"  # see eotd.engines.resolve (ct2 on a CPU: float32)
    preload: bool = True  # load the model before serving, not on the first request


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(AppConfig, argv)
    settings = StoreSettings.from_env()
    if cfg.db_url:
        settings = replace(settings, db_url=cfg.db_url)
    store, _backups = open_store_with_backups(settings)  # backups: see db/README.md
    if not cfg.model and cfg.adapter == "default":  # a fresh store serves the shipped student
        register_shipped(store)
    access = Access.detect(store, cfg.host or None)
    print(f"sign-in mode: {access.mode.value} (see studio/identity.py)", file=sys.stderr)
    studio = Studio(
        store,
        base=cfg.model or None,
        adapter=cfg.adapter,
        max_new_tokens=cfg.max_new_tokens,
        max_batch=cfg.max_batch,
        engine=EngineSettings.from_env().engine if cfg.engine == "auto" else cfg.engine,
        precision=cfg.precision,
        access=access,
        export_dir=settings.data_dir / "exports",
    )
    if cfg.preload:
        info = studio.model_info()
        print(f"serving {info.name} (base {info.base}, adapter {info.adapter})", file=sys.stderr)
    demo = build_app(studio)
    launch(demo, studio, server_name=cfg.host or None, server_port=cfg.port or None)


if __name__ == "__main__":
    main()
