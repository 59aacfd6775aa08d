"""sparsesis demo: paint a few strokes of sky, building, window... and get a photo.

    python demo.py                 # http://127.0.0.1:7860, offline, on the shipped checkpoint
    python demo.py --share         # a temporary public link through Gradio's share service

The app uses only the public ``sparsesis`` API. Generation is exposed as the named endpoint
``/generate`` for ``gradio_client``.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import random
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import cv2  # noqa: E402
import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from sparsesis.checkpoint import CheckpointError  # noqa: E402
from sparsesis.classes import ClassSet, PaletteError  # noqa: E402
from sparsesis.layouts import LayoutError, canvas_to_ids, resize_ids  # noqa: E402
from sparsesis.loader import find_models, load  # noqa: E402
from sparsesis.schema import DEFAULT_GUIDANCE  # noqa: E402

HERE = Path(__file__).resolve().parent
CHECKPOINTS = Path(os.environ.get("SPARSESIS_CHECKPOINTS", HERE / "checkpoints"))
EXAMPLES = HERE / "examples"
CANVAS = 256  # the painting surface; layouts are area-downsampled to the model's size
DISPLAY = 256  # generated images are shown upscaled to this size
MAX_UPLOAD_SIDE = 4096
# default model first: the distilled student when it exists; GAN baselines after ours
PREFERRED = ("ours64-student4", "ours64")
# All torch work (loading and generating) runs on this one thread. Every thread that calls torch gets its own
# OpenMP team, whose idle workers keep spinning on the 2 cores: with Gradio's worker threads taking turns, the
# 4-step student took 0.15 s instead of 0.06 s per image (measured; see README, "The demo").
MODEL_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparsesis-model")


log = logging.getLogger("sparsesis.demo")


def user_error(message: str) -> gr.Error:
    """An expected user error: the message in the browser, one line in the server log (not a traceback)."""
    log.warning("user error: %s", message)
    return gr.Error(message, print_exception=False)


def answer_unreadable_images(editor: gr.ImageEditor) -> gr.ImageEditor:
    """Make ``editor`` answer a value that is not an image (sent through the API) with a clear message instead
    of Gradio's generic 'upstream app has raised an exception'. (Wrapping the instance's ``preprocess``:
    a subclass of a Gradio component makes Gradio write a type-stub file beside this one.)"""
    preprocess = editor.preprocess

    def guarded(payload):
        try:
            return preprocess(payload)
        except Exception as err:  # PIL's UnidentifiedImageError, a truncated file, ...
            raise user_error("The layout sent is not a readable image: send a PNG label map painted in the "
                             f"palette colours ({type(err).__name__}).") from err

    editor.preprocess = guarded
    return editor


def on_model_thread(fn, *args, **kwargs):
    return MODEL_THREAD.submit(fn, *args, **kwargs).result()


def discover_models(root: Path = CHECKPOINTS) -> dict[str, Path]:
    """``{name: folder}`` for every diffusion or GAN-baseline checkpoint under ``root``, preferred ones first."""
    return find_models(root, PREFERRED)


def load_model(folder: Path):
    """Any generator checkpoint; diffusion models run in bf16 on the CPU (~1.3x faster, same look)."""
    return load(folder, precision="bf16")


class ModelPool:
    """Loads each checkpoint once, on first use."""

    def __init__(self, models: dict[str, Path]):
        self.models = models
        self.loaded: dict = {}

    def get(self, name: str):
        if name not in self.models:
            raise user_error(f"No model named {name!r}. Available: {', '.join(self.models) or 'none'}. "
                           f"Put checkpoints in {CHECKPOINTS}.")
        if name not in self.loaded:
            try:
                model = on_model_thread(load_model, self.models[name])
            except CheckpointError as err:
                raise user_error(f"Could not load model {name!r}: {err}") from err
            # one throw-away step, so that the first click does not pay for building the CPU kernels
            blank = np.full((model.image_size, model.image_size), model.classset.unknown_id)
            on_model_thread(model, blank, steps=1)
            self.loaded[name] = model
        return self.loaded[name]


def legend_html(classset: ClassSet) -> str:
    items = "".join(
        f'<span style="display:inline-flex;align-items:center;margin:2px 10px 2px 0">'
        f'<span style="width:16px;height:16px;border:1px solid #888;background:rgb{tuple(c)};margin-right:5px"></span>'
        f"{name}</span>" for name, c in zip(classset.names, classset.colors))
    items += ('<span style="display:inline-flex;align-items:center"><span style="width:16px;height:16px;'
              f'border:1px solid #888;background:rgb{tuple(classset.unknown_color)};margin-right:5px"></span>'
              "unknown (unpainted / eraser)</span>")
    return f'<div id="legend">{items}</div>'


def hex_color(c) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


def editor_composite(value) -> np.ndarray:
    """The painted canvas as RGBA from the ImageEditor's value (a dict, or an image via the API)."""
    if value is None:
        raise user_error("Nothing painted yet: pick a class colour and paint a few strokes on the canvas.")
    if isinstance(value, dict):
        comp = value.get("composite")
        if comp is None:
            comp = value.get("background")
        if comp is None:
            raise user_error("Nothing painted yet: pick a class colour and paint a few strokes on the canvas.")
    else:
        comp = value
    comp = np.asarray(comp)
    if comp.ndim == 2:
        comp = np.repeat(comp[..., None], 3, axis=2)
    if comp.dtype != np.uint8:
        comp = np.clip(comp, 0, 255).astype(np.uint8)
    return comp


def upscale(img: np.ndarray, size: int = DISPLAY) -> np.ndarray:
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def build_app(models: dict[str, Path] | None = None) -> gr.Blocks:
    models = discover_models() if models is None else models
    pool = ModelPool(models)
    default = next(iter(models), None)
    classset = None
    default_steps, default_guidance = 20, DEFAULT_GUIDANCE
    load_error, default_distilled = None, False
    if default is not None:
        try:
            s = pool.get(default)
            classset = s.classset
            default_steps, default_guidance = min(s.default_steps, 20), s.guidance_label or DEFAULT_GUIDANCE
            default_distilled = bool(s.distilled)
        except gr.Error as err:
            load_error = str(err)
    if classset is None:
        from sparsesis.classes import LABELMEFACADE as classset  # palette for the canvas; generation will explain
    examples = sorted(EXAMPLES.glob("*_sketch.png")) if EXAMPLES.is_dir() else []

    def generate(editor, steps, seed, guidance, method, show_steps):
        if not models:
            raise user_error(f"No checkpoint found in {CHECKPOINTS}: reinstall the repository with its "
                           "checkpoints/ folder (git lfs is not needed) or train one (README, 'Training').")
        synth = pool.get(method)
        try:
            ids = canvas_to_ids(editor_composite(editor), synth.classset, synth.image_size)
        except (LayoutError, PaletteError) as err:
            raise user_error(str(err)) from err
        if (ids == synth.classset.unknown_id).all():
            raise user_error("The canvas holds no class strokes (everything is 'unknown'): paint at least one "
                           "stroke with a class colour.")
        try:
            steps, seed = int(steps), int(seed)
        except (TypeError, ValueError) as err:
            raise user_error("Steps and seed must be whole numbers.") from err
        t0 = time.perf_counter()
        try:
            # a distilled student has its guidance built in and a GAN has none: the slider does not apply
            g = None if synth.distilled or synth.guidance_label is None else float(guidance)
            out = on_model_thread(synth, ids, steps=steps, seed=seed, guidance=g, return_trajectory=bool(show_steps))
        except ValueError as err:
            raise user_error(str(err)) from err
        ms = 1000 * (time.perf_counter() - t0)
        image, traj = out if show_steps else (out, None)
        gallery = [(upscale(x0, 128), f"step {i + 1}, t={t:.2f}") for i, (t, x0) in enumerate(zip(traj.t, traj.x0))] if traj else []
        labelled = float((ids != synth.classset.unknown_id).mean())
        if synth.guidance_label is None:  # a GAN
            how = "one generator pass (GAN: steps and guidance do not apply)"
        else:
            g_text = f"guidance {synth.guidance_label:g} (built in)" if synth.distilled else f"guidance {float(guidance):g}"
            how = f"{steps} step(s) · {g_text}"
        info = (f"**{ms:.0f} ms** · {method} · {how} · seed {seed} · "
                f"{100 * labelled:.0f}% of the layout labelled")
        seen = cv2.resize(synth.classset.ids_to_colors(ids), (128, 128), interpolation=cv2.INTER_NEAREST)
        return upscale(image), gallery, seen, info

    def load_upload(path):
        if path is None:
            return gr.update()
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise user_error("Could not read the uploaded file as an image (PNG or JPEG label map expected).")
        if max(img.shape[:2]) > MAX_UPLOAD_SIDE:
            raise user_error(f"The upload is {img.shape[1]}x{img.shape[0]} pixels: at most {MAX_UPLOAD_SIDE} on a "
                           "side, please. Label maps only need the layout's resolution.")
        if img.dtype == np.uint16:
            img = np.round(img / 257.0).astype(np.uint8)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
        try:  # the same tolerance as the canvas: blended edges snap, a photo is refused
            ids = classset.colors_to_ids(rgb, source="uploaded label map", nearest=True)
        except PaletteError as err:
            raise user_error(str(err)) from err
        return _as_editor_value(classset.ids_to_colors(resize_ids(ids, CANVAS)))

    def load_example(evt: gr.SelectData):
        path = examples[evt.index]
        sketch = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        sketch = cv2.resize(sketch, (CANVAS, CANVAS), interpolation=cv2.INTER_NEAREST)
        photo_path = path.with_name(path.name.replace("_sketch", "_photo"))
        photo = cv2.cvtColor(cv2.imread(str(photo_path)), cv2.COLOR_BGR2RGB) if photo_path.is_file() else None
        return _as_editor_value(sketch), (upscale(photo) if photo is not None else None)

    with gr.Blocks(title="sparsesis: photos from sparse layouts") as app:
        some = ", ".join(classset.names[:4])
        gr.Markdown("# sparsesis: a photo from a few strokes\nPick a class colour, paint a few rough strokes "
                    f"({some}...), press **Generate**. Unpainted space is *unknown*: "
                    "the model fills it in. Keep the seed fixed and add strokes to edit the picture.")
        if load_error:
            gr.Markdown(f"⚠️ {load_error}")
        if not models:
            gr.Markdown(f"⚠️ No checkpoint found in `{CHECKPOINTS}`: generation is unavailable.")
        gr.HTML(legend_html(classset))
        with gr.Row():
            with gr.Column(scale=3):
                editor = gr.ImageEditor(
                    value=_as_editor_value(np.full((CANVAS, CANVAS, 3), classset.unknown_color, np.uint8)),
                    label="Layout (paint here)", elem_id="canvas", sources=(), canvas_size=(CANVAS, CANVAS),
                    fixed_canvas=True, transforms=(), layers=False, image_mode="RGBA", type="numpy", format="png",
                    brush=gr.Brush(colors=[hex_color(c) for c in classset.colors], default_color=hex_color(classset.colors[1]),
                                   color_mode="fixed", default_size=12),
                    eraser=gr.Eraser(default_size=16), height=420)
                answer_unreadable_images(editor)
                upload = gr.File(label="…or upload a colour label map (PNG in the palette)", file_types=["image"],
                                 type="filepath", elem_id="upload")
            with gr.Column(scale=3):
                result = gr.Image(label="Generated photo", type="numpy", format="png", elem_id="result",
                                  interactive=False, height=300)
                info = gr.Markdown(elem_id="info")
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    live = gr.Checkbox(label="Live: regenerate while painting", value=False, elem_id="live")
                with gr.Row():
                    method = gr.Dropdown(choices=list(models), value=default, label="Model", elem_id="method")
                    steps = gr.Slider(1, 100, value=default_steps, step=1, label="Sampling steps", elem_id="steps")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                    new_seed = gr.Button("New seed", elem_id="new_seed")
                    guidance = gr.Slider(0, 5, value=default_guidance, step=0.25, elem_id="guidance",
                                         label="Guidance scale" + (" (built into this distilled model)"
                                                                   if default_distilled else ""),
                                         interactive=not default_distilled)
                show_steps = gr.Checkbox(label="Show the denoising steps", value=False, elem_id="show_steps")
                seen = gr.Image(label="What the model sees (layout at its resolution)", type="numpy",
                                interactive=False, height=140, format="png")
                truth = gr.Image(label="Example's real photo", type="numpy", interactive=False, height=140,
                                 visible=bool(examples))
        steps_gallery = gr.Gallery(label="Predicted clean image at each step", columns=8, height=200,
                                   elem_id="steps_gallery")
        if examples:
            ex_gallery = gr.Gallery(value=[(str(p), p.stem.replace("_sketch", "")) for p in examples],
                                    label="Examples from the held-out set (click to load)", columns=6, height=150,
                                    allow_preview=False, elem_id="examples")
            ex_gallery.select(load_example, None, [editor, truth])
        inputs = [editor, steps, seed, guidance, method, show_steps]
        outputs = [result, steps_gallery, seen, info]
        generate_btn.click(generate, inputs, outputs, api_name="generate")
        new_seed.click(lambda: random.randint(0, 2 ** 31 - 1), None, seed, api_name=False)

        def model_defaults(name):
            """A model's own step count, and its guidance (fixed for a distilled student)."""
            try:
                synth = pool.get(name)
            except gr.Error:
                return gr.update(), gr.update()
            if synth.guidance_label is None:  # a GAN
                return (gr.update(interactive=False, label="Sampling steps (not used by a GAN)"),
                        gr.update(interactive=False, label="Guidance scale (not used by a GAN)"))
            return (gr.update(value=min(synth.default_steps, 20), interactive=True, label="Sampling steps"),
                    gr.update(value=synth.guidance_label, interactive=not synth.distilled,
                              label="Guidance scale" + (" (built into this distilled model)" if synth.distilled else "")))

        method.change(model_defaults, method, [steps, guidance], api_name=False)
        upload.change(load_upload, upload, editor, api_name="load_label_map")

        def live_generate(editor, steps, seed, guidance, method, show, is_live):
            if not is_live:
                return gr.update(), gr.update(), gr.update(), gr.update()
            try:
                return generate(editor, steps, seed, guidance, method, show)
            except gr.Error:  # half-painted canvases are normal while painting live
                return gr.update(), gr.update(), gr.update(), gr.update()

        editor.change(live_generate, inputs + [live], outputs, api_name=False, trigger_mode="always_last",
                      show_progress="hidden")
    return app


def _as_editor_value(rgb: np.ndarray) -> dict:
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return {"background": rgba, "layers": [], "composite": rgba}


def main() -> None:
    p = argparse.ArgumentParser(description="sparsesis Gradio demo")
    on_space = bool(os.environ.get("SPACE_ID"))
    p.add_argument("--host", default="0.0.0.0" if on_space else "127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="create a temporary public link (needs internet)")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    build_app().queue().launch(server_name=a.host, server_port=a.port, share=a.share, ssr_mode=False)


if __name__ == "__main__":
    main()
