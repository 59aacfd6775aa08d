"""sparsesis demo: paint a few strokes of sky, building, window... and get a photo.

    python demo.py                 # http://127.0.0.1:7860, offline, on the shipped checkpoint
    python demo.py --share         # a temporary public link through Gradio's share service

The app uses only the public ``sparsesis`` API. Named endpoints for ``gradio_client`` (the order is API; tests pin
it): ``/generate`` (layout, steps, seed, guidance, model, show steps, upscaler, samples, reference photo, strength,
keep the rest) -> ``Generated``'s fields (the 256x256 photo, the steps, what the model sees, the status, the
samples, the reroll editor); ``/reroll_region`` (the result with the region painted over it, the layout, steps,
seed, guidance, model, upscaler) -> ``Rerolled``'s; ``/layout_from_photo`` (a photo, thin it, seed -> the canvas);
``/load_label_map`` (a colour label map -> the canvas). The handlers are ``Demo``'s methods; ``build_app`` lays
out the widgets and wires them.

As a public demo it holds under a crowd (``python demo.py --max-queue 8 --time-limit 30 --file-lifetime 3600``,
the defaults): one request at a time on the model and at most ``--max-queue`` waiting behind it, none waiting
longer than ``--time-limit`` seconds; past either bound the request gets the demo's own answer, "The demo is busy
... please try again in a moment" (``ModelQueue``). Gradio deletes the uploads and results it wrote once they are
``--file-lifetime`` seconds old, uploads are capped at ``MAX_FILE_SIZE``, and every input of every endpoint is
checked before any work (``whole_number``, ``real_number``, ``one_of``, ``yes_no``, ``answer_unreadable_images``):
a bad one gets the demo's own one-line message and one line in the log, no traceback.
``benchmarks/load_demo.py`` measures it under load.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import functools
import json
import logging
import math
import os
import random
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import cv2  # noqa: E402
import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from sparsesis.models.checkpoint import CheckpointError  # noqa: E402
from sparsesis.data.classes import ClassSet, PaletteError  # noqa: E402
from sparsesis.editing import layout_from_photo  # noqa: E402
from sparsesis.interface import Generator  # noqa: E402
from sparsesis.data.layouts import LayoutError, canvas_to_ids, resize_ids  # noqa: E402
from sparsesis.loader import find_models, load  # noqa: E402
from sparsesis.pipeline import UPSAMPLER_DIR, Pipeline  # noqa: E402
from sparsesis.models.upsampler import Upsampler  # noqa: E402
from sparsesis.models.schema import DEFAULT_GUIDANCE  # noqa: E402

HERE = Path(__file__).resolve().parent
CHECKPOINTS = Path(os.environ.get("SPARSESIS_CHECKPOINTS", HERE / "checkpoints"))
EXAMPLES = HERE / "examples"
CANVAS = 256  # the painting surface; layouts are area-downsampled to the model's size
DISPLAY = 256  # generated images are shown at this size (the 4x upsampler's output for a 64 px model)
MAX_UPLOAD_SIDE = 2048  # label maps and photos (the segmenter reads a photo at 64 px, the canvas is 256)
MAX_CANVAS_SIDE = 4 * CANVAS  # a canvas value sent through the API
MAX_FILE_SIZE = "16mb"  # one uploaded file; the largest photo accepted, 2048x2048 RGB, is 12.6 MB uncompressed
# the widgets' ranges, checked again for every value sent (the API takes any JSON)
STEPS, SAMPLES, GUIDANCE, STRENGTH = (1, 100), (1, 4), (0.0, 5.0), (0.0, 1.0)
SEEDS = (0, 2 ** 32 - 1)
# A 2-vCPU Space makes a 256x256 picture in 0.1-0.6 s (the default 4-step student; the 20-step teacher with 4
# samples takes ~10 s): 8 waiting is a few seconds for the default and the time limit catches slow settings. Each
# waiting request holds one of Gradio's 40 worker threads, hence the cap.
MAX_QUEUE, MAX_QUEUE_CAP, TIME_LIMIT = 8, 32, 30.0
# Uploads and results stay on disk an hour (a page refers to them by their files until it is reloaded), swept
# every sixth of that: at the 2.4 requests a second a Space serves at most, ~0.2 MB each (benchmarks/load_demo.py
# measures it), about 2 GB at the most.
FILE_LIFETIME = 3600
GRADIO_BACKLOG = 100  # requests Gradio holds before handing them to a handler; past it, Gradio's own 'Queue is full'
# default model first: the distilled student when it exists; GAN baselines after ours
PREFERRED = ("ours64-student4", "ours64")
# All torch work (loading and generating) runs on this one thread. Every thread that calls torch gets its own
# OpenMP team, whose idle workers keep spinning on the 2 cores: with Gradio's worker threads taking turns, the
# 4-step student ran about twice as slow.
MODEL_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparsesis-model")


log = logging.getLogger("sparsesis.demo")


def user_error(message: str) -> gr.Error:
    """An expected user error: the message in the browser, one line in the server log (not a traceback)."""
    log.warning("user error: %s", message)
    return gr.Error(message, print_exception=False)


BUSY = "The demo is busy"  # how every refusal for load begins


def busy(why: str) -> gr.Error:
    """The demo's answer past its queue's bounds, one line in the log."""
    message = f"{BUSY} ({why}): please try again in a moment."
    log.warning("busy: %s", why)
    return gr.Error(message, print_exception=False)


# ---- the checks every value goes through before any work (the API sends any JSON: strings, NaN, 2**70)

def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite_number(value) -> bool:
    """An int (however large) or a finite float; not a bool, a string or None."""
    return (isinstance(value, int) or isinstance(value, float) and math.isfinite(value)) and not isinstance(value, bool)


def real_number(value, what: str, lo: float, hi: float) -> float:
    """``value`` as a finite float in [lo, hi], or the demo's own error naming ``what`` and its range."""
    if not (_finite_number(value) and lo <= value <= hi):
        raise user_error(f"{what} must be a number from {lo:g} to {hi:g} (got {_shown(value)}).")
    return float(value)


def whole_number(value, what: str, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi] (4.0 is 4, 4.5 is refused), or the demo's own error."""
    if not (_finite_number(value) and value == int(value) and lo <= value <= hi):
        raise user_error(f"{what} must be a whole number from {lo} to {hi} (got {_shown(value)}).")
    return int(value)


def one_of(value, what: str, choices) -> str:
    if value not in list(choices):
        raise user_error(f"{what} must be one of {', '.join(map(repr, choices))} (got {_shown(value)}).")
    return value


def yes_no(value, what: str) -> bool:
    """A checkbox's value: true, false or nothing (false)."""
    if value is not None and not isinstance(value, bool):
        raise user_error(f"{what} must be true or false (got {_shown(value)}).")
    return bool(value)


def checked(component, check):
    """``component`` with ``check`` applied to every value sent to it before Gradio's own preprocessing, so a bad
    value gets the demo's message instead of Gradio's words and a traceback in the log. Returns the component.
    (Wrapping the instance's ``preprocess``: a subclass of a Gradio component makes Gradio write a type-stub file
    beside this one.)"""
    preprocess = component.preprocess
    component.preprocess = lambda payload: preprocess(check(payload))
    return component


def answer_malformed_requests(app: gr.Blocks) -> gr.Blocks:
    """Make a request that does not fit an endpoint (too few values, a value of the wrong shape: a string for an
    image) get the demo's one-line message instead of Gradio's multi-line error and a traceback in the log; the
    demo's own checks (``checked``, ``answer_unreadable_images``) pass as they are. (Wrapping the instance's
    ``preprocess_data``, which reads every value sent before any handler runs.)"""
    preprocess_data = app.preprocess_data

    async def guarded(block_fn, inputs, *args, **kwargs):
        try:
            return await preprocess_data(block_fn, inputs, *args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            what = str(err).strip().split("\n")[0][:160]
            raise user_error(f"The request does not fit /{block_fn.api_name or block_fn.name}'s inputs "
                             f"({type(err).__name__}: {what}): see the API page or demo.py's docstring.") from err

    app.preprocess_data = guarded
    return app


class ModelQueue:
    """The demo's queue in front of the model: one request at a time, first come first served, at most
    ``max_queue`` waiting behind it and none waiting longer than ``time_limit`` seconds. Past either bound the
    request gets ``busy``'s answer, at once or when its wait runs out, rather than a late picture; a request that
    got its turn runs to its end. (Gradio's own bound, ``queue(max_size=...)``, answers with words the demo cannot
    change and no time limit; the events that use the model are handed to the handlers at once, so the wait
    happens here.)"""

    def __init__(self, max_queue: int = MAX_QUEUE, time_limit: float = TIME_LIMIT):
        if not 0 <= max_queue <= MAX_QUEUE_CAP or not time_limit > 0:
            raise ValueError(f"max_queue must be 0-{MAX_QUEUE_CAP} and time_limit positive, got {max_queue}, "
                             f"{time_limit}")
        self.max_queue, self.time_limit = max_queue, time_limit
        self.line: collections.deque = collections.deque()  # line[0] has the model, the others wait
        self.changed = threading.Condition()

    @contextlib.contextmanager
    def turn(self):
        ticket = object()
        with self.changed:
            if len(self.line) > self.max_queue:
                raise busy(f"the queue for the model is full, {len(self.line) - 1} waiting")
            self.line.append(ticket)
            if not self.changed.wait_for(lambda: self.line[0] is ticket, timeout=self.time_limit):
                self.line.remove(ticket)
                self.changed.notify_all()
                raise busy(f"this request waited {self.time_limit:g} s for the model, its time limit")
        try:
            yield
        finally:
            with self.changed:
                self.line.popleft()
                self.changed.notify_all()


def answer_unreadable_images(component, what: str = "layout (a PNG label map painted in the palette colours)",
                             max_side: int = MAX_UPLOAD_SIDE):
    """Make an image component answer a value that is not an image, or one far too large, (sent through the
    API) with a clear message instead of Gradio's generic 'upstream app has raised an exception'. Returns the
    component. (Wrapping the instance's ``preprocess``: a subclass of a Gradio component makes Gradio write a
    type-stub file beside this one.)"""
    preprocess = component.preprocess

    def guarded(payload):
        for path in _payload_paths(payload):  # the size from the file's header, before decoding it
            if not os.path.isfile(path):
                raise user_error("The image sent is no longer on the server (uploads and results are deleted after "
                                 "a while): upload it or generate it again.")
            side = _image_side(path)
            if side is None:
                raise user_error(f"The file sent is not a readable image: send a {what}.")
            if side > max_side:
                raise user_error(f"The image sent is {side} pixels on a side: at most {max_side}, please "
                                 f"(the canvas is {CANVAS}x{CANVAS}).")
        try:
            return preprocess(payload)
        except Exception as err:  # PIL's UnidentifiedImageError, a truncated file, ...
            raise user_error(f"The file sent is not a readable image ({type(err).__name__}): send a {what}.") from err

    component.preprocess = guarded
    return component


def _payload_paths(payload) -> list[str]:
    """The local file paths inside an image component's payload (a FileData, or the editor's background,
    layers and composite)."""
    if hasattr(payload, "model_dump"):  # Gradio's pydantic payloads
        payload = payload.model_dump()
    if isinstance(payload, dict):
        if isinstance(payload.get("path"), str):
            return [payload["path"]]
        return [p for v in payload.values() for p in _payload_paths(v)]
    if isinstance(payload, (list, tuple)):
        return [p for v in payload for p in _payload_paths(v)]
    return []


def _image_side(path: str) -> int | None:
    """The longer side of the image at ``path`` read from its header (no decoding), or None if it is none."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return max(im.size)
    except Exception:  # not an image, unreadable
        return None


def on_model_thread(fn, *args, **kwargs):
    return MODEL_THREAD.submit(fn, *args, **kwargs).result()


def discover_models(root: Path = CHECKPOINTS) -> dict[str, Path]:
    """``{name: folder}`` for every diffusion or GAN-baseline checkpoint under ``root``, preferred ones first."""
    return find_models(root, PREFERRED)


def open_generator(folder: Path) -> Generator:
    """Any generator checkpoint, at ``precision="auto"``: bf16 where the CPU computes it natively and faster (the
    same look), fp32 elsewhere."""
    return load(folder, precision="auto")


class ModelPool:
    """Loads each checkpoint once, on first use, as a ``Pipeline`` (the generator plus the shared upsampler)."""

    def __init__(self, models: dict[str, Path], upsampler=None):
        self.models, self.upsampler = models, upsampler
        self.loaded: dict = {}

    def get(self, name: str) -> Pipeline:
        if name not in self.models:
            raise user_error(f"No model named {_shown(name)}. Available: {', '.join(self.models) or 'none'}. "
                             f"Put checkpoints in {CHECKPOINTS}.")
        if name not in self.loaded:
            try:
                model: Generator = on_model_thread(open_generator, self.models[name])
                up = self.upsampler if self.upsampler is not None and self.upsampler.classset == model.classset else None
                pipe = Pipeline(model, up)
            except CheckpointError as err:
                raise user_error(f"Could not load model {name!r}: {err}") from err
            # one throw-away step, so that the first click does not pay for building the CPU kernels
            blank = np.full((model.image_size, model.image_size), model.classset.unknown_id)
            on_model_thread(model, blank, steps=1)
            self.loaded[name] = pipe
        return self.loaded[name]


def load_upsampler(folder: Path | None):
    """The shared learned upsampler, or None (bicubic only) when it is missing; a broken one is logged."""
    if folder is None or not (Path(folder) / "config.json").is_file():
        return None
    try:
        return Upsampler.from_pretrained(folder, precision="auto")
    except CheckpointError as err:
        log.warning("learned upsampler unavailable, bicubic only: %s", err)
        return None


def load_segmenter(folder: Path):
    from sparsesis.models.segmenter import Segmenter

    try:
        return Segmenter.from_pretrained(folder)
    except (CheckpointError, ValueError) as err:
        raise user_error(f"Photo to layout needs the segmenter checkpoint ({err}).") from err


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
    return img if img.shape[0] == size else cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def region_from_marks(value) -> tuple[np.ndarray, np.ndarray]:
    """The reroll editor's value -> (the image to keep (H, W, 3), the marked region (H, W) bool).

    The image is the editor's background (the last result); the region is wherever the user painted on it: a
    layer's opaque pixels, or (through the API) the pixels where the composite differs from the background."""
    if not isinstance(value, dict) or value.get("background") is None:
        raise user_error("Generate a picture first, then mark the region to reroll on it.")
    bg = np.asarray(value["background"])
    region = np.zeros(bg.shape[:2], bool)
    for layer in value.get("layers") or []:
        layer = np.asarray(layer)
        if layer.shape[:2] == region.shape and layer.ndim == 3 and layer.shape[2] == 4:
            region |= layer[..., 3] > 0
    comp = value.get("composite")
    if comp is not None and np.asarray(comp).shape[:2] == region.shape:
        region |= (np.abs(np.asarray(comp)[..., :3].astype(int) - bg[..., :3]).sum(-1) > 30)
    if not region.any():
        raise user_error("No region marked: paint over the part of the picture to draw again.")
    return bg[..., :3].astype(np.uint8), region


UPSCALE_CHOICES = {"learned upsampler": "learned", "bicubic": "bicubic"}


class Generated(NamedTuple):
    """What ``/generate`` returns, in the API's order."""
    image: np.ndarray  # the 256x256 picture
    steps: list  # (image, caption) per denoising step, when asked for
    seen: np.ndarray  # the layout at the model's resolution
    info: str  # the status line
    samples: list  # (image, caption) per sample
    marks: dict  # the reroll editor, holding the new picture
    last: dict  # the state an edit continues from


class Rerolled(NamedTuple):
    """What ``/reroll_region`` returns, in the API's order."""
    image: np.ndarray
    info: str
    marks: dict
    last: dict


class Demo:
    """The demo's handlers: each takes the widgets' values and returns the outputs' (named results), so they
    run and are tested without a server. ``build_app`` lays out the widgets and wires them to these."""

    def __init__(self, models: dict[str, Path], upsampler: Path | None, segmenter: Path,
                 queue: ModelQueue | None = None):
        self.models, self.segmenter, self.seg = models, segmenter, None
        self.queue = queue or ModelQueue()
        self.pool = ModelPool(models, load_upsampler(upsampler))
        self.default = next(iter(models), None)
        self.classset, self.load_error = None, None
        self.default_steps, self.default_guidance, self.default_distilled = 20, DEFAULT_GUIDANCE, False
        if self.default is not None:
            try:
                g = self.pool.get(self.default).generator
                self.classset = g.classset
                self.default_steps = min(g.default_steps, 20)
                self.default_guidance = g.guidance_label or DEFAULT_GUIDANCE
                self.default_distilled = bool(g.distilled)
            except gr.Error as err:
                self.load_error = str(err)
        if self.classset is None:  # the palette for the canvas; generating will explain what is missing
            from sparsesis.data.classes import LABELMEFACADE

            self.classset = LABELMEFACADE
        self.examples = sorted(EXAMPLES.glob("*_sketch.png")) if EXAMPLES.is_dir() else []
        self.has_upsampler = self.pool.upsampler is not None

    # ---- reading the widgets

    def read_layout(self, editor, pipe: Pipeline) -> np.ndarray:
        """The canvas as ids at the pipeline's output size, with the demo's own errors."""
        try:
            ids = canvas_to_ids(editor_composite(editor), pipe.classset, pipe.output_size)
        except (LayoutError, PaletteError) as err:
            raise user_error(str(err)) from err
        if (ids == pipe.classset.unknown_id).all():
            raise user_error("The canvas holds no class strokes (everything is 'unknown'): paint at least one "
                             "stroke with a class colour.")
        return ids

    def check_model(self, method):
        """The model's name as sent, or the demo's error (no checkpoint at all, or no such model)."""
        if not self.models:
            raise user_error(f"No checkpoint found in {CHECKPOINTS}: reinstall the repository with its "
                             "checkpoints/ folder or train one (README, 'Training and evaluation').")
        if method not in self.models:
            self.pool.get(method)  # its error names the models there are
        return method

    @staticmethod
    def check_settings(steps, seed, guidance, upscale_choice) -> tuple[int, int, float, str]:
        """The settings every generating endpoint shares, checked before any work."""
        return (whole_number(steps, "Sampling steps", *STEPS), whole_number(seed, "The seed", *SEEDS),
                real_number(guidance, "The guidance scale", *GUIDANCE),
                one_of(upscale_choice, "'To 256x256 by'", UPSCALE_CHOICES))

    @staticmethod
    def settings(pipe: Pipeline, guidance, upscale_choice) -> tuple[float | None, str]:
        """(the guidance the model takes, the upscaler it can use)."""
        g = pipe.generator
        # a distilled student has its guidance built in and a GAN has none: the slider does not apply
        guid = None if g.distilled or not g.is_diffusion else float(guidance)
        how = UPSCALE_CHOICES[upscale_choice]
        if how == "learned" and pipe.upsampler is None:
            how = "bicubic"
        return guid, how

    def pipeline(self, method) -> Pipeline:
        return self.pool.get(self.check_model(method))

    @staticmethod
    def describe(pipe, method, steps, seed, guidance, how, ids, ms, extra="") -> str:
        g = pipe.generator
        if not g.is_diffusion:
            text = "one generator pass (GAN: steps and guidance do not apply)"
        else:
            scale = g.guidance_label if g.distilled else float(guidance)
            on_top = f" + classifier-free {g.cfg_scale_label:g}" if g.cfg_scale_label != 1.0 else ""
            g_text = f"{g.guidance_kind} {scale:g}{on_top}" + (" (built in)" if g.distilled else "")
            text = f"{steps} step(s) · {g_text}"
        labelled = float((ids != pipe.classset.unknown_id).mean())
        return (f"**{ms:.0f} ms** · {method} · {text} · seed {seed} · {pipe.output_size}px via {how} · "
                f"{100 * labelled:.0f}% of the layout labelled{extra}")

    # ---- the handlers

    def generate(self, editor, steps, seed, guidance, method, show_steps, upscale_choice="learned upsampler",
                 samples=1, reference=None, strength=1.0, keep_rest=False, last=None) -> Generated:
        steps, seed, guidance, upscale_choice = self.check_settings(steps, seed, guidance, upscale_choice)
        n = whole_number(1 if samples is None else samples, "Samples", *SAMPLES)
        strength = real_number(1.0 if strength is None else strength, "The strength", *STRENGTH)
        show_steps = yes_no(show_steps, "'Show the denoising steps'")
        keep_rest = yes_no(keep_rest, "'Keep the rest'")
        self.check_model(method)
        with self.queue.turn():
            pipe = self.pipeline(method)
            ids = self.read_layout(editor, pipe)
            guid, how = self.settings(pipe, guidance, upscale_choice)
            look = None  # below strength 1 the picture takes the reference photo's look (SDEdit); at 1, plain
            if reference is not None and strength < 1.0:
                look = (np.asarray(reference)[..., :3].astype(np.uint8), strength)
            keep = (keep_rest and last and last.get("method") == method and last.get("how") == how
                    and n == 1 and look is None and last["image"].shape[0] == pipe.output_size)
            return self.draw(pipe, ids, method, seed, guidance, how, n, show_steps, last if keep else None,
                             {"steps": steps, "guidance": guid}, look)

    def draw(self, pipe: Pipeline, ids, method, seed, guidance, how, n, show_steps, keep_from, sampling,
             look=None) -> Generated:
        """``generate``'s work, its inputs checked: ``n`` pictures of ``ids`` (with the look of ``look``, a
        reference photo and its strength, when given), or one that keeps the rest of ``keep_from`` (the last
        result's state). ``sampling``: the generator's steps and guidance."""
        t0 = time.perf_counter()
        extra, traj = "", None
        try:
            if keep_from is not None:
                images = on_model_thread(pipe.edit, ids, keep_from["image"], keep_from["ids"], seed=seed, upscale=how,
                                         **sampling)[None]
                extra = " · kept the rest of the last picture"
            else:
                batch = np.repeat(ids[None], n, axis=0)
                make, look_args = (pipe, ()) if look is None else (pipe.sdedit, look)
                out = on_model_thread(make, batch, *look_args, seed=seed, upscale=how, return_trajectory=show_steps,
                                      **sampling)
                images, traj = out if show_steps else (out, None)
        except ValueError as err:
            raise user_error(str(err)) from err
        ms = 1000 * (time.perf_counter() - t0)
        small, _, _ = pipe.layouts(ids)
        steps_view = [(upscale(x0[0], 128), f"step {i + 1}, t={t:.2f}")
                      for i, (t, x0) in enumerate(zip(traj.t, traj.x0))] if traj else []
        seen = cv2.resize(pipe.classset.ids_to_colors(small[0]), (128, 128), interpolation=cv2.INTER_NEAREST)
        shown = [upscale(im) for im in images]
        state = {"method": method, "how": how, "ids": ids, "image": images[0], "seed": seed, "images": list(images)}
        return Generated(image=shown[0], steps=steps_view, seen=seen,
                         info=self.describe(pipe, method, sampling["steps"], seed, guidance, how, small, ms, extra),
                         samples=[(im, f"seed {seed + i}") for i, im in enumerate(shown)],
                         marks=_as_editor_value(shown[0]), last=state)

    def reroll_region(self, marks, editor, steps, seed, guidance, method,
                      upscale_choice="learned upsampler") -> Rerolled:
        steps, seed, guidance, upscale_choice = self.check_settings(steps, seed, guidance, upscale_choice)
        self.check_model(method)
        shown, region = region_from_marks(marks)
        with self.queue.turn():
            pipe = self.pipeline(method)
            ids = self.read_layout(editor, pipe)
            guid, how = self.settings(pipe, guidance, upscale_choice)
            size = (pipe.output_size,) * 2
            image = shown if shown.shape[:2] == size else cv2.resize(shown, size, interpolation=cv2.INTER_AREA)
            if region.shape != size:
                region = cv2.resize(region.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
            t0 = time.perf_counter()
            try:
                out = on_model_thread(pipe.reroll, ids, image, region, seed=seed, upscale=how, steps=steps,
                                      guidance=guid)
            except ValueError as err:
                raise user_error(str(err)) from err
            ms = 1000 * (time.perf_counter() - t0)
        if shown.shape[:2] != size:  # a model whose output is not the display size: keep the shown pixels exactly
            same = (out == image).all(-1).astype(np.uint8)  # where the pipeline kept the old pixels
            same = cv2.erode(cv2.resize(same, shown.shape[1::-1], interpolation=cv2.INTER_NEAREST), np.ones((5, 5)))
            out = np.where(same[..., None] > 0, shown, upscale(out, shown.shape[0]))
        small, _, _ = pipe.layouts(ids)
        info = self.describe(pipe, method, steps, seed, guidance, how, small, ms,
                             f" · rerolled {100 * region.mean():.0f}% of the picture")
        state = {"method": method, "how": how, "ids": ids, "image": out, "seed": seed, "images": [out]}
        return Rerolled(image=upscale(out), info=info, marks=_as_editor_value(upscale(out)), last=state)

    def layout_from_photo(self, photo, sketch, seed=0) -> dict:
        if photo is None:
            raise user_error("Upload a photo first.")
        sketch = yes_no(sketch, "'Thin it to a sketch'")
        seed = whole_number(0 if seed is None else seed, "The seed", *SEEDS)
        photo = np.asarray(photo)
        if photo.ndim == 2:
            photo = np.repeat(photo[..., None], 3, axis=2)
        if max(photo.shape[:2]) > MAX_UPLOAD_SIDE:
            raise user_error(f"The photo is {max(photo.shape[:2])} pixels on a side: at most {MAX_UPLOAD_SIDE}, "
                             "please.")
        with self.queue.turn():
            seg = self.segmenter_model()
            if seg.classset.to_dict() != self.classset.to_dict():
                raise user_error("The segmenter's classes differ from the model's palette: photo to layout is "
                                 "unavailable.")
            try:
                ids = on_model_thread(layout_from_photo, photo[..., :3].astype(np.uint8), seg, CANVAS // 4,
                                      sketch=sketch, seed=seed)
            except ValueError as err:
                raise user_error(str(err)) from err
        ids = cv2.resize(ids.astype(np.int32), (CANVAS, CANVAS), interpolation=cv2.INTER_NEAREST)
        return _as_editor_value(self.classset.ids_to_colors(ids))

    def segmenter_model(self):
        """The segmenter, loaded once (on the model thread)."""
        if self.seg is None:
            self.seg = on_model_thread(load_segmenter, self.segmenter)
        return self.seg

    def pick_sample(self, last, evt: gr.SelectData):
        """Picking one of several samples: its seed becomes the seed, its image the one to edit."""
        if not last or evt.index >= len(last.get("images", [])):
            return gr.update(), gr.update(), gr.update(), last
        image = last["images"][evt.index]
        last = {**last, "image": image, "seed": last["seed"] + evt.index}
        return upscale(image), last["seed"], _as_editor_value(upscale(image)), last

    def load_label_map(self, path) -> dict:
        if path is None:
            return gr.update()
        side = _image_side(str(path))  # from the header, before decoding
        if side is not None and side > MAX_UPLOAD_SIDE:
            raise user_error(f"The upload is {side} pixels on a side: at most {MAX_UPLOAD_SIDE}, please. Label maps "
                             "only need the layout's resolution.")
        img = None if side is None else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise user_error("Could not read the uploaded file as an image (PNG or JPEG label map expected).")
        if img.dtype == np.uint16:
            img = np.round(img / 257.0).astype(np.uint8)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
        try:  # the same tolerance as the canvas: blended edges snap, a photo is refused
            ids = self.classset.colors_to_ids(rgb, source="uploaded label map", nearest=True)
        except PaletteError as err:
            raise user_error(str(err)) from err
        return _as_editor_value(self.classset.ids_to_colors(resize_ids(ids, CANVAS)))

    def example(self, index: int) -> tuple[dict, np.ndarray | None]:
        """Example ``index``: (its sketch as the canvas value, its real photo or None)."""
        path = self.examples[index]
        sketch = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        sketch = cv2.resize(sketch, (CANVAS, CANVAS), interpolation=cv2.INTER_NEAREST)
        photo_path = path.with_name(path.name.replace("_sketch", "_photo"))
        photo = cv2.cvtColor(cv2.imread(str(photo_path)), cv2.COLOR_BGR2RGB) if photo_path.is_file() else None
        return _as_editor_value(sketch), (upscale(photo) if photo is not None else None)

    def load_example(self, evt: gr.SelectData):
        return self.example(evt.index)

    def first_view(self) -> tuple[dict, Generated | None]:
        """What a first visit sees: the first example on the canvas and its picture (default model, seed 0);
        a blank canvas and no picture where there is no example or no working model."""
        blank = _as_editor_value(np.full((CANVAS, CANVAS, 3), self.classset.unknown_color, np.uint8))
        if not self.examples or self.default is None or self.load_error:
            return blank, None
        canvas, _ = self.example(0)
        try:
            return canvas, self.generate(canvas, self.default_steps, 0, self.default_guidance, self.default, False,
                                         "learned upsampler" if self.has_upsampler else "bicubic")
        except gr.Error:  # an example that does not fit this model's palette: start blank
            return blank, None

    def model_defaults(self, name):
        """A model's own step count, and its guidance (fixed for a distilled student)."""
        try:
            g = self.pool.get(name).generator
        except gr.Error:
            return gr.update(), gr.update()
        if not g.is_diffusion:
            return (gr.update(interactive=False, label="Sampling steps (not used by a GAN)"),
                    gr.update(interactive=False, label="Guidance scale (not used by a GAN)"))
        return (gr.update(value=min(g.default_steps, 20), interactive=True, label="Sampling steps"),
                gr.update(value=g.guidance_label, interactive=not g.distilled,
                          label="Guidance scale" + (" (built into this distilled model)" if g.distilled else "")))

    def live_generate(self, *args):
        *args, is_live = args
        if not is_live:
            return (gr.update(),) * len(Generated._fields)
        try:
            return self.generate(*args)
        except gr.Error:  # half-painted canvases are normal while painting live
            return (gr.update(),) * len(Generated._fields)

    def segmenter_note(self) -> str:
        seg_json = HERE / "results" / "segmenter.json"
        if not seg_json.is_file():
            return ""
        return f" (mIoU {json.loads(seg_json.read_text())['real_held_out']['miou']:.2f} on real held-out photos)"


def build_app(models: dict[str, Path] | None = None, upsampler: Path | None = CHECKPOINTS / UPSAMPLER_DIR,
              segmenter: Path = CHECKPOINTS / "seg64", max_queue: int = MAX_QUEUE, time_limit: float = TIME_LIMIT,
              file_lifetime: int = FILE_LIFETIME) -> gr.Blocks:
    """The app: ``Demo``'s handlers behind a ``ModelQueue(max_queue, time_limit)``; Gradio deletes the temporary
    files it wrote (uploads, results) once they are ``file_lifetime`` seconds old, looking every sixth of that.
    Serve it with ``serve``."""
    d = Demo(discover_models() if models is None else models, upsampler, segmenter, ModelQueue(max_queue, time_limit))
    canvas_value, first = d.first_view()
    sweep = (max(1, int(file_lifetime) // 6), max(1, int(file_lifetime)))
    with gr.Blocks(title="sparsesis: photos from sparse layouts", delete_cache=sweep) as app:
        gr.Markdown("# sparsesis: a photo from a few strokes\nPick a class colour, paint a few rough strokes "
                    f"({', '.join(d.classset.names[:4])}...), press **Generate**. Unpainted space is *unknown*: "
                    "the model fills it in. Keep the seed fixed and add strokes to edit the picture; tick "
                    "*Keep the rest* to redraw only around the new strokes, or mark a region on the result and "
                    "*Reroll* it.")
        if d.load_error:
            gr.Markdown(f"⚠️ {d.load_error}")
        if not d.models:
            gr.Markdown(f"⚠️ No checkpoint found in `{CHECKPOINTS}`: generation is unavailable.")
        gr.HTML(legend_html(d.classset))
        w = SimpleNamespace(last=gr.State(first.last if first else None))  # the widgets, by name
        with gr.Row():
            with gr.Column(scale=3):
                layout_column(d, w, canvas_value)
            with gr.Column(scale=3):
                result_column(d, w, first)
        with gr.Accordion("Reroll a region: paint over the part of the result to draw again", open=False):
            w.marks = gr.ImageEditor(
                value=first.marks if first else None, label="Mark the region on the result", elem_id="marks",
                sources=(), canvas_size=(DISPLAY, DISPLAY), fixed_canvas=True, transforms=(), layers=False,
                image_mode="RGBA", type="numpy", format="png", height=320, eraser=gr.Eraser(default_size=24),
                brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed", default_size=24))
            w.reroll_btn = gr.Button("Reroll the marked region (a new seed: press New seed first)", elem_id="reroll")
        check_inputs(d, w)
        wire(d, w)
    return answer_malformed_requests(app)


def layout_column(d: Demo, w: SimpleNamespace, canvas_value: dict) -> None:
    """The canvas, the examples, the label-map upload and photo → layout."""
    w.editor = gr.ImageEditor(
        value=canvas_value, label="Layout (paint here)", elem_id="canvas", sources=(), canvas_size=(CANVAS, CANVAS),
        fixed_canvas=True, transforms=(), layers=False, image_mode="RGBA", type="numpy", format="png",
        eraser=gr.Eraser(default_size=16), height=420,
        brush=gr.Brush(colors=[hex_color(c) for c in d.classset.colors], color_mode="fixed",
                       default_color=hex_color(d.classset.colors[1]), default_size=12))
    w.ex_gallery = gr.Gallery(value=[(str(p), p.stem.replace("_sketch", "")) for p in d.examples],
                              label="Examples from the held-out set (click to load)", columns=6, height=110,
                              allow_preview=False, elem_id="examples") if d.examples else None
    w.upload = gr.File(label="…or upload a colour label map (PNG in the palette)", file_types=["image"],
                       type="filepath", elem_id="upload")
    with gr.Accordion("Start from a photo (photo → layout)", open=False):
        gr.Markdown("The project's segmenter turns a photo into a layout on the canvas. It is small and "
                    f"makes mistakes{d.segmenter_note()}: edit the layout before generating.")
        w.photo_in = gr.Image(label="Photo", type="numpy", elem_id="photo_in", height=160)
        w.thin = gr.Checkbox(label="Thin it to a sketch (a few strokes per region)", value=False, elem_id="thin")
        w.to_layout = gr.Button("Photo → layout", elem_id="to_layout")


def result_column(d: Demo, w: SimpleNamespace, first: Generated | None) -> None:
    """The picture, its status, the settings and the views of what the model did."""
    w.result = gr.Image(value=first.image if first else None, label="Generated photo", type="numpy", format="png",
                        elem_id="result", interactive=False, height=300)
    w.info = gr.Markdown(first.info if first else "", label="Status", elem_id="info")
    with gr.Row():
        w.generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
        w.live = gr.Checkbox(label="Live: regenerate while painting", value=False, elem_id="live")
        w.keep_rest = gr.Checkbox(label="Keep the rest (redraw only near changed strokes)", value=False,
                                  elem_id="keep_rest")
    with gr.Row():
        w.method = gr.Dropdown(choices=list(d.models), value=d.default, label="Model", elem_id="method")
        w.upscale_choice = gr.Radio(list(UPSCALE_CHOICES), value="learned upsampler" if d.has_upsampler
                                    else "bicubic", label="To 256x256 by", elem_id="upscale",
                                    interactive=d.has_upsampler)
    with gr.Row():
        w.steps = gr.Slider(*STEPS, value=d.default_steps, step=1, label="Sampling steps", elem_id="steps")
        w.samples = gr.Slider(*SAMPLES, value=1, step=1, label="Samples", elem_id="samples")
    with gr.Row():
        w.seed = gr.Number(value=0, precision=0, minimum=SEEDS[0], maximum=SEEDS[1], label="Seed", elem_id="seed")
        w.new_seed = gr.Button("New seed", elem_id="new_seed")
        w.guidance = gr.Slider(*GUIDANCE, value=d.default_guidance, step=0.25, elem_id="guidance",
                               label="Guidance scale" + (" (built into this distilled model)"
                                                         if d.default_distilled else ""),
                               interactive=not d.default_distilled)
    w.sample_gallery = gr.Gallery(columns=4, height=140, label="Samples (pick one to keep its seed)",
                                  elem_id="samples_gallery", allow_preview=False, format="png")
    with gr.Accordion("The look of a reference photo", open=False):
        w.reference = gr.Image(label="Reference photo", type="numpy", elem_id="reference", height=160)
        w.strength = gr.Slider(*STRENGTH, value=0.7, step=0.05, elem_id="strength",
                               label="Strength: 0 = the reference, 1 = only the layout")
    with gr.Accordion("What the model sees, the denoising steps, the example's photo", open=False):
        w.show_steps = gr.Checkbox(label="Show the denoising steps", value=False, elem_id="show_steps")
        w.seen = gr.Image(value=first.seen if first else None, type="numpy", interactive=False,
                          label="What the model sees (layout at its resolution)", height=140, format="png")
        w.truth = gr.Image(value=d.example(0)[1] if d.examples else None, label="Example's real photo",
                           type="numpy", interactive=False, height=140, visible=bool(d.examples))
        w.steps_gallery = gr.Gallery(label="Predicted clean image at each step", columns=8, height=200,
                                     elem_id="steps_gallery")


def check_inputs(d: Demo, w: SimpleNamespace) -> None:
    """Every input of every endpoint checked as it arrives, before Gradio's own preprocessing and any work: images
    by their header (readable, not too large), numbers and choices by ``Demo``'s own checks."""
    photo = "photo (PNG or JPEG)"
    answer_unreadable_images(w.editor, max_side=MAX_CANVAS_SIDE)
    answer_unreadable_images(w.marks, "picture with the region to reroll painted over it", MAX_CANVAS_SIDE)
    answer_unreadable_images(w.photo_in, photo)
    answer_unreadable_images(w.reference, "reference " + photo)
    # the upload's path as it is: the handler reads the header first. (gr.File's own preprocessing refuses a
    # file by its name's extension in Gradio's words and leaves an empty temporary file behind for each upload.)
    w.upload.preprocess = lambda payload: next(iter(_payload_paths(payload)), None)
    checked(w.method, d.check_model)
    checked(w.upscale_choice, functools.partial(one_of, what="'To 256x256 by'", choices=UPSCALE_CHOICES))
    for slider, what, (lo, hi) in ((w.steps, "Sampling steps", STEPS), (w.samples, "Samples", SAMPLES)):
        checked(slider, functools.partial(whole_number, what=what, lo=lo, hi=hi))
    for slider, what, (lo, hi) in ((w.guidance, "The guidance scale", GUIDANCE),
                                   (w.strength, "The strength", STRENGTH)):
        checked(slider, functools.partial(real_number, what=what, lo=lo, hi=hi))
    checked(w.seed, functools.partial(whole_number, what="The seed", lo=SEEDS[0], hi=SEEDS[1]))
    for box in (w.show_steps, w.keep_rest, w.thin, w.live):
        checked(box, functools.partial(yes_no, what=repr(box.label)))


def wire(d: Demo, w: SimpleNamespace) -> None:
    """The events. The public endpoints' input and output orders are API (tests/test_demo.py pins them). Those that
    use the model reach their handler at once (``concurrency_limit=None``): the wait is in ``Demo.queue``."""
    inputs = [w.editor, w.steps, w.seed, w.guidance, w.method, w.show_steps, w.upscale_choice, w.samples, w.reference,
              w.strength, w.keep_rest, w.last]
    outputs = [w.result, w.steps_gallery, w.seen, w.info, w.sample_gallery, w.marks, w.last]  # Generated's fields
    model = {"concurrency_limit": None}
    w.generate_btn.click(d.generate, inputs, outputs, api_name="generate", **model)
    w.reroll_btn.click(d.reroll_region, [w.marks, w.editor, w.steps, w.seed, w.guidance, w.method, w.upscale_choice],
                       [w.result, w.info, w.marks, w.last], api_name="reroll_region", **model)
    w.to_layout.click(d.layout_from_photo, [w.photo_in, w.thin, w.seed], w.editor, api_name="layout_from_photo",
                      **model)
    w.upload.change(d.load_label_map, w.upload, w.editor, api_name="load_label_map")
    if w.ex_gallery is not None:
        w.ex_gallery.select(d.load_example, None, [w.editor, w.truth], api_name=False)
    w.sample_gallery.select(d.pick_sample, w.last, [w.result, w.seed, w.marks, w.last], api_name=False)
    w.new_seed.click(lambda: random.randint(0, 2 ** 31 - 1), None, w.seed, api_name=False)
    w.method.change(d.model_defaults, w.method, [w.steps, w.guidance], api_name=False)
    w.editor.change(d.live_generate, inputs + [w.live], outputs, api_name=False, trigger_mode="always_last",
                    show_progress="hidden", **model)


def _as_editor_value(rgb: np.ndarray) -> dict:
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return {"background": rgba, "layers": [], "composite": rgba}


def remove_old_files(blocks: gr.Blocks, root: Path, min_age: float) -> int:
    """Remove the uploads and results that ``blocks`` made (Gradio's ``temp_file_sets``) once older than ``min_age``
    seconds (by ctime, as Gradio ages them), but the files its components keep (cached examples), then the
    folders under ``root`` left empty that long; returns how many files went. Gradio's own clean-up
    (``delete_cache``) does the same but iterates a set that requests add to from other threads: under load it
    fails with "set changed size during iteration" and its scheduled task ends for good (a soak saw it stop after
    three minutes and the folder grow 1.2 MB a request from then on); it also leaves each file's folder behind."""
    keep, removed, now = set(), 0, time.time()
    for component in blocks.blocks.values():
        keep.update(getattr(component, "keep_in_cache", set()))
    for temp_set in blocks.temp_file_sets:
        for path in list(temp_set):  # a copy, made under the GIL: requests add files meanwhile
            if path in keep:
                continue
            try:
                if now - os.lstat(path).st_ctime > min_age:
                    os.remove(path)
                    removed += 1
                    temp_set.discard(path)
            except FileNotFoundError:  # gone already: Gradio's clean-up got there first
                temp_set.discard(path)
            except OSError:
                continue
    for folder, subfolders, files in os.walk(root, topdown=False):
        if files or subfolders or Path(folder) == Path(root):
            continue
        with contextlib.suppress(OSError):  # a file arrived meanwhile: rmdir refuses
            if now - os.stat(folder).st_mtime > min_age:
                os.rmdir(folder)
    return removed


def sweep_old_files(every: float, min_age: float):
    """A lifespan for Gradio's app: ``remove_old_files`` on Gradio's temporary folder every ``every`` seconds while
    the server runs; an error is one log line, and the next sweep runs all the same."""
    import asyncio

    import anyio

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async def sweep():
            while True:
                await asyncio.sleep(every)
                try:
                    await anyio.to_thread.run_sync(remove_old_files, app.get_blocks(),
                                                   Path(gr.utils.get_upload_folder()), min_age)
                except Exception as err:  # noqa: BLE001  (the sweep must outlive any one failure)
                    log.warning("clean-up: %s", err)

        task = asyncio.create_task(sweep())
        try:
            yield
        finally:
            task.cancel()

    return lifespan


def serve(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, **launch):
    """Launch ``app`` as the public demo runs: Gradio's queue holding at most ``GRADIO_BACKLOG`` requests not yet
    handed to a handler (its 'Queue is full' past that; the model's own bound is ``ModelQueue``), one at a time for
    the events that do not use the model, uploads capped at ``MAX_FILE_SIZE``, old uploads and results (and their
    folders) removed on a schedule that outlives any one failure, offline pages (no SSR)."""
    app.queue(max_size=GRADIO_BACKLOG, default_concurrency_limit=1)
    if app.delete_cache:
        every, lifetime = app.delete_cache
        launch.setdefault("app_kwargs", {}).setdefault("lifespan", sweep_old_files(every, lifetime))
    return app.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE, ssr_mode=False, **launch)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="sparsesis Gradio demo")
    on_space = bool(os.environ.get("SPACE_ID"))
    p.add_argument("--host", default="0.0.0.0" if on_space else "127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="create a temporary public link (needs internet)")
    p.add_argument("--max-queue", type=int, default=MAX_QUEUE,
                   help=f"requests that may wait for the model behind the one it runs, 0-{MAX_QUEUE_CAP} "
                        f"(default {MAX_QUEUE}); past it: 'The demo is busy'")
    p.add_argument("--time-limit", type=float, default=TIME_LIMIT,
                   help=f"seconds a request may wait for the model before it is answered busy (default {TIME_LIMIT:g})")
    p.add_argument("--file-lifetime", type=int, default=FILE_LIFETIME,
                   help=f"seconds Gradio keeps an upload or a result on disk (default {FILE_LIFETIME})")
    a = p.parse_args(argv)
    if not 0 <= a.max_queue <= MAX_QUEUE_CAP or not a.time_limit > 0 or a.file_lifetime < 1:
        p.error(f"--max-queue takes 0-{MAX_QUEUE_CAP}, --time-limit and --file-lifetime a positive number")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = build_app(max_queue=a.max_queue, time_limit=a.time_limit, file_lifetime=a.file_lifetime)
    serve(app, a.host, a.port, share=a.share)


if __name__ == "__main__":
    main()
