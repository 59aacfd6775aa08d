"""The Gradio demo through gradio_client and a real headless browser."""
import importlib.util
import shutil
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from sparsesis.models.checkpoint import save_model_dir  # noqa: E402
from sparsesis.data.classes import LABELMEFACADE  # noqa: E402
from sparsesis.models.configs import preset  # noqa: E402
from sparsesis.models.schema import diffusion_config as model_config  # noqa: E402
from sparsesis.models.unet import UNet  # noqa: E402

spec = importlib.util.spec_from_file_location("demo", REPO / "demo.py")
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)

ARTIFACTS = REPO / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    unet = preset("tiny", LABELMEFACADE.num_channels, 32)
    model = UNet(unet)
    for p in model.parameters():  # not all-zero output, so seeds differ
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.02)
    cfg = model_config(unet, LABELMEFACADE, sampling={"sampler": "ddim", "steps": 4, "guidance": 1.5})
    return save_model_dir(folder, model.state_dict(), cfg)


def tiny_upsampler(folder: Path) -> Path:
    from sparsesis.models.schema import upsampler_config
    from sparsesis.models.upsampler import UpsamplerConfig, UpsamplerNet

    torch.manual_seed(0)
    net = UpsamplerNet(UpsamplerConfig(LABELMEFACADE.num_channels, channels=8, blocks=1))
    return save_model_dir(folder, net.state_dict(), upsampler_config(net, LABELMEFACADE, {"step": 0}))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    tiny_checkpoint(root / "tiny")
    broken = root / "broken"
    shutil.copytree(root / "tiny", broken)
    (broken / "model.safetensors").write_bytes(b"not a checkpoint")
    app = demo.build_app({"tiny": root / "tiny", "broken": broken}, upsampler=tiny_upsampler(root / "up"))
    port = free_port()
    demo.serve(app, port=port, prevent_thread_lock=True, quiet=True)  # as `python demo.py` serves it
    yield f"http://127.0.0.1:{port}/"
    app.close()


def layout_png(path: Path, paint=True, colour=None, classes=(6, 1, 8), palette=LABELMEFACADE) -> dict:
    img = np.full((256, 256, 4), 255, np.uint8)
    img[..., :3] = palette.unknown_color
    if paint:
        img[:70, :, :3] = palette.colors[classes[0]]  # sky
        img[90:220, 40:200, :3] = palette.colors[classes[1]]  # building
        img[120:140, 60:80, :3] = palette.colors[classes[2]]  # a window
    if colour is not None:
        img[5:10, 5:10, :3] = colour
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA))
    return {"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path))}


def fetch_rgb(server: str, src: str) -> np.ndarray:
    """An image the page shows, by its src (a URL on the server, or a data URL)."""
    import base64
    import urllib.request

    if src.startswith("data:"):
        data = base64.b64decode(src.split(",", 1)[1])
    else:
        with urllib.request.urlopen(src if src.startswith("http") else server.rstrip("/") + "/" + src.lstrip("/")) as r:
            data = r.read()
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_api_generates_image_of_right_size_and_same_seed_same_image(server, tmp_path):
    client = Client(server, verbose=False)
    value = layout_png(tmp_path / "lay.png")
    a = client.predict(value, 4, 7, 1.5, "tiny", False, api_name="/generate")
    b = client.predict(value, 4, 7, 1.5, "tiny", False, api_name="/generate")
    c = client.predict(value, 4, 8, 1.5, "tiny", False, api_name="/generate")
    img_a, img_b, img_c = read_rgb(a[0]), read_rgb(b[0]), read_rgb(c[0])
    assert img_a.shape == (demo.DISPLAY, demo.DISPLAY, 3)
    np.testing.assert_array_equal(img_a, img_b)
    assert not np.array_equal(img_a, img_c)
    seen = read_rgb(a[2])
    assert seen.shape == (128, 128, 3)  # the layout at the model's size, shown enlarged
    LABELMEFACADE.colors_to_ids(seen)  # only palette colours: painted classes and unknown
    assert "ms" in a[3] and "4 step" in a[3]


def test_api_shows_steps(server, tmp_path):
    client = Client(server, verbose=False)
    out = client.predict(layout_png(tmp_path / "lay.png"), 3, 0, 1.0, "tiny", True, api_name="/generate")
    assert len(out[1]) == 3


@pytest.mark.parametrize("case, message", [
    ("empty", "no class strokes"),
    ("broken", "Could not load model"),
    ("unknown_model", "No model named 'nope'. Available: tiny, broken"),
])
def test_api_bad_input_gives_clear_message(server, tmp_path, case, message):
    client = Client(server, verbose=False)
    value = layout_png(tmp_path / "lay.png", paint=case != "empty")
    method = {"broken": "broken", "unknown_model": "nope"}.get(case, "tiny")
    with pytest.raises(Exception, match=message):
        client.predict(value, 4, 0, 1.5, method, False, api_name="/generate")
    # the server is still up
    assert client.predict(layout_png(tmp_path / "ok.png"), 2, 0, 1.0, "tiny", False, api_name="/generate")[0]


def test_upload_snaps_stray_colours_and_rejects_photos_and_huge_images(server, tmp_path):
    client = Client(server, verbose=False)
    stray = tmp_path / "stray.png"
    img = LABELMEFACADE.ids_to_colors(np.full((64, 64), 1))
    img[3, 3] = (10, 200, 30)  # one blended pixel: snapped, as the canvas does
    cv2.imwrite(str(stray), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = client.predict(handle_file(str(stray)), api_name="/load_label_map")
    assert read_rgb(out["composite"]).shape[:2] == (demo.CANVAS, demo.CANVAS)
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(Exception, match=r"\d+% of its pixels are not within .* palette colour.*building"):
        client.predict(handle_file(str(photo)), api_name="/load_label_map")
    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.zeros((10, 5000, 3), np.uint8))
    with pytest.raises(Exception, match=f"5000 pixels on a side: at most {demo.MAX_UPLOAD_SIDE}"):
        client.predict(handle_file(str(huge)), api_name="/load_label_map")
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), cv2.cvtColor(LABELMEFACADE.ids_to_colors(np.full((100, 150), 6)), cv2.COLOR_RGB2BGR))
    out = client.predict(handle_file(str(good)), api_name="/load_label_map")
    assert read_rgb(out["composite"]).shape[:2] == (demo.CANVAS, demo.CANVAS)


def test_noise_or_a_file_that_is_not_an_image_get_clear_one_line_errors(server, tmp_path, caplog, capfd):
    import logging

    client = Client(server, verbose=False)
    noise = tmp_path / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with caplog.at_level(logging.WARNING, logger="sparsesis.demo"):
        with pytest.raises(Exception, match=r"\d+% of its pixels are not within"):
            client.predict({"background": handle_file(str(noise)), "layers": [], "composite": handle_file(str(noise))},
                           4, 0, 1.5, "tiny", False, api_name="/generate")
        with pytest.raises(Exception, match="not a readable image"):
            client.predict({"background": handle_file(str(text)), "layers": [], "composite": handle_file(str(text))},
                           4, 0, 1.5, "tiny", False, api_name="/generate")
        with pytest.raises(Exception, match="Could not read the uploaded file as an image"):
            client.predict(handle_file(str(text)), api_name="/load_label_map")
    lines = [r.getMessage() for r in caplog.records if r.name == "sparsesis.demo"]
    assert sum("user error" in m for m in lines) == 3 and all("\n" not in m for m in lines)
    assert "Traceback" not in capfd.readouterr().err  # no traceback per expected error


def test_missing_checkpoint_message(tmp_path):
    app = demo.build_app({})
    port = free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        with pytest.raises(Exception, match="No checkpoint found"):
            client.predict(layout_png(tmp_path / "l.png"), 4, 0, 1.5, None, False, api_name="/generate")
    finally:
        app.close()


def test_api_names_and_orders_every_input_and_output(server):
    """The /generate endpoint's parameters are public API (clients call it positionally): pinned here, and
    every output of every endpoint has a name."""
    api = Client(server, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert [p["label"] for p in api["/generate"]["parameters"]] == [
        "Layout (paint here)", "Sampling steps", "Seed", "Guidance scale", "Model", "Show the denoising steps",
        "To 256x256 by", "Samples", "Reference photo", "Strength: 0 = the reference, 1 = only the layout",
        "Keep the rest (redraw only near changed strokes)"]
    assert [r["label"] for r in api["/generate"]["returns"]] == [
        "Generated photo", "Predicted clean image at each step", "What the model sees (layout at its resolution)",
        "Status", "Samples (pick one to keep its seed)", "Mark the region on the result"]
    for name, endpoint in api.items():
        for r in endpoint["returns"]:
            assert r["label"] and not r["label"].startswith("value_"), (name, r)


def test_a_huge_canvas_or_a_photo_that_is_no_image_get_the_demos_own_message(server, tmp_path):
    client = Client(server, verbose=False)
    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.full((4000, 4000, 3), 255, np.uint8))
    with pytest.raises(Exception, match=f"4000 pixels on a side: at most {demo.MAX_CANVAS_SIDE}"):
        client.predict({"background": handle_file(str(huge)), "layers": [], "composite": handle_file(str(huge))},
                       4, 0, 1.5, "tiny", False, api_name="/generate")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    with pytest.raises(Exception, match="not a readable image: send a photo"):
        client.predict(handle_file(str(text)), False, 0, api_name="/layout_from_photo")


def white_png(path: Path, side: int) -> Path:
    cv2.imwrite(str(path), np.full((side, side, 3), 255, np.uint8))  # a few KB on disk, however large
    return path


def assert_one_line_each(caplog, capfd, n: int, prefix: str = "user error"):
    """``n`` refusals logged, one line each, and no traceback in the server's output."""
    lines = [r.getMessage() for r in caplog.records if r.name == "sparsesis.demo" and r.getMessage().startswith(prefix)]
    assert len(lines) == n and all("\n" not in m for m in lines), lines
    assert "Traceback" not in capfd.readouterr().err


def test_a_4000_pixel_image_to_every_image_input_gets_the_demos_own_one_line_message(server, tmp_path, caplog,
                                                                                    capfd):
    import logging

    client = Client(server, verbose=False)
    huge = handle_file(str(white_png(tmp_path / "huge.png", 4000)))
    layout = layout_png(tmp_path / "lay.png")
    huge_editor = {"background": huge, "layers": [], "composite": huge}
    calls = [  # every image input of every endpoint, and the limit it answers with
        ((huge_editor, 4, 0, 1.5, "tiny", False), "/generate", demo.MAX_CANVAS_SIDE),  # the canvas
        ((layout, 4, 0, 1.5, "tiny", False, "bicubic", 1, huge, 0.5), "/generate", demo.MAX_UPLOAD_SIDE),  # reference
        ((huge_editor, layout, 4, 0, 1.5, "tiny"), "/reroll_region", demo.MAX_CANVAS_SIDE),  # the marks
        ((layout, huge_editor, 4, 0, 1.5, "tiny"), "/reroll_region", demo.MAX_CANVAS_SIDE),  # the canvas
        ((huge, False, 0), "/layout_from_photo", demo.MAX_UPLOAD_SIDE),
        ((huge,), "/load_label_map", demo.MAX_UPLOAD_SIDE),
    ]
    with caplog.at_level(logging.WARNING, logger="sparsesis.demo"):
        for args, api, limit in calls:
            with pytest.raises(Exception, match=f"4000 pixels on a side: at most {limit}") as err:
                client.predict(*args, api_name=api)
            assert "\n" not in str(err.value), api
    assert_one_line_each(caplog, capfd, len(calls))


def test_a_seed_beyond_its_range_and_bad_numbers_or_choices_get_the_demos_own_message(server, tmp_path, caplog,
                                                                                     capfd):
    import logging

    client = Client(server, verbose=False)
    value = layout_png(tmp_path / "lay.png")
    photo = handle_file(str(white_png(tmp_path / "photo.png", 64)))
    seed_message = r"The seed must be a whole number from 0 to 4294967295 \(got 1180591620717411303424\)"
    calls = [
        ((value, 4, 2 ** 70, 1.5, "tiny", False), "/generate", seed_message),
        ((value, value, 4, 2 ** 70, 1.5, "tiny"), "/reroll_region", seed_message),
        ((photo, False, 2 ** 70), "/layout_from_photo", seed_message),
        ((value, 4, -1, 1.5, "tiny", False), "/generate", r"The seed must be a whole number .* \(got -1\)"),
        ((value, 4, 2.5, 1.5, "tiny", False), "/generate", r"The seed must be a whole number .* \(got 2.5\)"),
        ((value, 0, 0, 1.5, "tiny", False), "/generate", r"Sampling steps must be a whole number from 1 to 100"),
        ((value, 101, 0, 1.5, "tiny", False), "/generate", r"Sampling steps must be a whole number from 1 to 100"),
        ((value, "four", 0, 1.5, "tiny", False), "/generate", r"Sampling steps .* \(got 'four'\)"),
        ((value, 4, 0, 7, "tiny", False), "/generate", r"The guidance scale must be a number from 0 to 5 \(got 7\)"),
        ((value, 4, 0, 1.5, "tiny", False, "nearest"), "/generate", r"'To 256x256 by' must be one of"),
        ((value, 4, 0, 1.5, "tiny", False, "bicubic", 9), "/generate", r"Samples must be a whole number from 1 to 4"),
        ((value, 4, 0, 1.5, "tiny", False, "bicubic", 1, None, 2.0), "/generate", r"The strength must be a number"),
        ((value, 4, 0, 1.5, "tiny", "yes"), "/generate", r"'Show the denoising steps' must be true or false"),
    ]
    with caplog.at_level(logging.WARNING, logger="sparsesis.demo"):
        for args, api, message in calls:
            with pytest.raises(Exception, match=message) as err:
                client.predict(*args, api_name=api)
            assert "\n" not in str(err.value) and "Overflow" not in str(err.value)
    assert_one_line_each(caplog, capfd, len(calls))


def raw_call(server: str, api: str, body: str) -> str:
    """A request as any HTTP client can send it (gradio_client refuses to send NaN): the JSON text ``body`` posted to
    Gradio's plain API, and the event stream that answers it."""
    import json
    import urllib.request

    post = urllib.request.Request(f"{server}gradio_api/call{api}", data=body.encode(),
                                  headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(post, timeout=30) as r:
        event_id = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{server}gradio_api/call{api}/{event_id}", timeout=60) as r:
        return r.read().decode()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_nan_infinities_and_malformed_requests_get_the_demos_own_message(server, number, caplog, capfd):
    import logging

    with caplog.at_level(logging.WARNING, logger="sparsesis.demo"):
        guidance = raw_call(server, "/generate", f'{{"data": [null, 4, 0, {number}, "tiny", false, "bicubic", 1, '
                                                 'null, 1.0, false]}')
        seed = raw_call(server, "/layout_from_photo", f'{{"data": [null, false, {number}]}}')
        too_few = raw_call(server, "/generate", '{"data": [null, 4, 0, 1.5, "tiny", false]}')
        not_an_image = raw_call(server, "/layout_from_photo", '{"data": ["a photo", false, 0]}')
    assert "event: error" in guidance and "The guidance scale must be a number from 0 to 5" in guidance
    assert "event: error" in seed and "The seed must be a whole number" in seed
    assert "event: error" in too_few and "The request does not fit /generate's inputs" in too_few
    assert "event: error" in not_an_image and "does not fit /layout_from_photo's inputs" in not_an_image
    assert_one_line_each(caplog, capfd, 4)


def test_an_upload_over_the_size_cap_is_refused_before_the_demo_reads_it(server, tmp_path):
    """In Gradio's words: gradio_client (and the browser) check the size before sending; the server answers a raw
    upload over the cap with HTTP 413."""
    import urllib.error
    import urllib.request

    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (17 * 2 ** 20))
    with pytest.raises(Exception, match="exceeds the maximum file size of 16777216 bytes"):
        Client(server, verbose=False).predict(handle_file(str(big)), api_name="/load_label_map")
    body = (b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + big.read_bytes() + b"\r\n--b--\r\n")
    upload = urllib.request.Request(f"{server}gradio_api/upload", data=body,
                                    headers={"Content-Type": "multipart/form-data; boundary=b"})
    with pytest.raises(urllib.error.HTTPError, match="413"):
        urllib.request.urlopen(upload, timeout=30)


def test_the_queue_refuses_past_its_bound_and_past_its_time_limit():
    """``ModelQueue`` without a server: one request holds the model; with ``max_queue=1`` a second waits and a
    third is refused at once; the waiting one is refused when its time limit runs out."""
    import threading
    import time

    q = demo.ModelQueue(max_queue=1, time_limit=0.5)
    holding, release = threading.Event(), threading.Event()

    def hold():
        with q.turn():
            holding.set()
            release.wait(5)

    def wait_for_a_turn(results):
        t = time.monotonic()
        try:
            with q.turn():
                results.append("ran")
        except gr.Error as err:
            results.append((err.message, time.monotonic() - t))

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    waited = []
    waiter = threading.Thread(target=wait_for_a_turn, args=(waited,))
    waiter.start()
    time.sleep(0.1)
    refused = []
    wait_for_a_turn(refused)  # the line is full: one running, one waiting
    waiter.join()
    release.set()
    holder.join()
    assert refused[0][0].startswith(demo.BUSY) and "queue for the model is full, 1 waiting" in refused[0][0]
    assert refused[0][1] < 0.1  # at once
    assert waited[0][0].startswith(demo.BUSY) and "waited 0.5 s" in waited[0][0] and 0.45 < waited[0][1] < 2
    after = []
    wait_for_a_turn(after)  # the line is empty again
    assert after == ["ran"] and not q.line
    with pytest.raises(ValueError):
        demo.ModelQueue(max_queue=demo.MAX_QUEUE_CAP + 1)


def test_the_command_line_sets_the_queue_the_time_limit_and_the_file_lifetime(monkeypatch):
    built = {}
    monkeypatch.setattr(demo, "build_app", lambda **kwargs: built.update(kwargs) or "app")
    monkeypatch.setattr(demo, "serve", lambda app, host, port, **kwargs: built.update(app=app, host=host, port=port))
    demo.main(["--max-queue", "4", "--time-limit", "12.5", "--file-lifetime", "600", "--port", "7861"])
    assert built == {"max_queue": 4, "time_limit": 12.5, "file_lifetime": 600, "app": "app", "host": "127.0.0.1",
                     "port": 7861}
    for wrong in (["--max-queue", "-1"], ["--max-queue", str(demo.MAX_QUEUE_CAP + 1)], ["--time-limit", "0"]):
        with pytest.raises(SystemExit):
            demo.main(wrong)


@pytest.mark.slow
def test_a_crowd_gets_a_picture_or_the_busy_message_in_time_and_the_demo_stays_as_fast(tmp_path, monkeypatch,
                                                                                      caplog, capfd):
    """With --max-queue 4, 30 simultaneous requests each get a picture or the demo's busy message within the time
    limit, none another error, and a single request afterwards answers as fast as before. Everything goes through
    the server and its queue; the tiny model stands in for the real one, slowed to ~0.6 s a picture so that the
    crowd outlasts the queue."""
    import concurrent.futures
    import logging
    import time

    model_thread = demo.on_model_thread

    def slow(fn, *args, **kwargs):
        time.sleep(0.6)  # one model call a picture (the pipeline)
        return model_thread(fn, *args, **kwargs)

    monkeypatch.setattr(demo, "on_model_thread", slow)
    time_limit = 10.0
    app = demo.build_app({"tiny": tiny_checkpoint(tmp_path / "tiny")}, upsampler=tiny_upsampler(tmp_path / "up"),
                         max_queue=4, time_limit=time_limit)
    port = free_port()
    demo.serve(app, port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        value = layout_png(tmp_path / "lay.png")

        def request(seed) -> tuple[str, float]:
            t = time.perf_counter()
            try:
                out = client.predict(value, 4, seed, 1.5, "tiny", False, api_name="/generate")
                answer = "picture" if read_rgb(out[0]).shape == (demo.DISPLAY, demo.DISPLAY, 3) else "no picture"
            except Exception as err:
                answer = f"{type(err).__name__}: {err}"
            return answer, time.perf_counter() - t

        request(0)  # warm
        before = sorted(request(s)[1] for s in (1, 2, 3))[1]
        with caplog.at_level(logging.WARNING, logger="sparsesis.demo"):
            with concurrent.futures.ThreadPoolExecutor(30) as pool:
                crowd = list(pool.map(request, range(100, 130)))
        after = sorted(request(s)[1] for s in (4, 5, 6))[1]
    finally:
        app.close()
    answers = [a for a, _ in crowd]
    busy = [a for a in answers if a.startswith(f"AppError: {demo.BUSY}") and "try again in a moment" in a]
    assert answers.count("picture") + len(busy) == 30, set(answers)
    assert answers.count("picture") >= 5 and busy  # the line was full, and it served all it held
    # the limit counts from when the handler has the request: before it, Gradio's intake of 30 requests at once (the
    # uploads, the joins, the decoding) took up to 6 s here, client and server sharing one loaded CPU
    assert max(t for _, t in crowd) < time_limit + 5
    assert after < 1.5 * before + 0.3, (before, after)
    assert_one_line_each(caplog, capfd, len(busy), prefix="busy:")


def test_temporary_files_and_their_folders_are_deleted_once_older_than_their_lifetime(tmp_path, monkeypatch):
    import time

    folder = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))  # Gradio's temporary folder for this app alone
    app = demo.build_app({"tiny": tiny_checkpoint(tmp_path / "tiny")}, upsampler=None, file_lifetime=2)
    assert app.delete_cache == (1, 2)  # swept every second, files over 2 s old deleted
    assert demo.build_app({}).delete_cache == (demo.FILE_LIFETIME // 6, demo.FILE_LIFETIME)
    port = free_port()
    demo.serve(app, port=port, prevent_thread_lock=True, quiet=True)
    try:
        kept = set(folder.rglob("*"))  # the page's own values (first view, examples) and their folders
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.predict(layout_png(tmp_path / "lay.png"), 2, 0, 1.0, "tiny", False, api_name="/generate")
        (tmp_path / "notes.png").write_text("not a photo")
        with pytest.raises(Exception, match="not a readable image"):  # an upload refused: deleted all the same
            client.predict(handle_file(str(tmp_path / "notes.png")), False, 0, api_name="/layout_from_photo")
        written = set(folder.rglob("*")) - kept  # the uploads, the results and their folders
        assert len([p for p in written if p.is_file()]) >= 3 and [p for p in written if p.is_dir()]
        time.sleep(8)  # files deleted at 2-3 s, their emptied folders 2-3 s later
        assert not [p for p in written if p.exists()] and all(p.exists() for p in kept)
    finally:
        app.close()


def handlers(tmp_path) -> "demo.Demo":
    tiny_checkpoint(tmp_path / "tiny")
    return demo.Demo({"tiny": tmp_path / "tiny"}, tiny_upsampler(tmp_path / "up"), tmp_path / "no-segmenter")


def test_handlers_generate_edit_and_reroll_without_a_server(tmp_path):
    d = handlers(tmp_path)
    canvas = np.full((256, 256, 3), LABELMEFACADE.unknown_color, np.uint8)
    canvas[:80] = LABELMEFACADE.colors[6]
    canvas[100:230, 30:220] = LABELMEFACADE.colors[1]
    value = {"background": canvas, "layers": [], "composite": canvas}
    out = d.generate(value, 4, 3, 1.5, "tiny", True)
    assert isinstance(out, demo.Generated) and out.image.shape == (256, 256, 3)
    assert len(out.steps) == 4 and "4 step(s)" in out.info and out.last["seed"] == 3
    again = d.generate(value, 4, 3, 1.5, "tiny", False)
    np.testing.assert_array_equal(out.image, again.image)  # same seed, same picture
    edited = canvas.copy()
    edited[140:170, 60:90] = LABELMEFACADE.colors[8]  # a window
    kept = d.generate({"background": edited, "layers": [], "composite": edited}, 4, 3, 1.5, "tiny", False,
                      keep_rest=True, last=out.last)
    assert "kept the rest" in kept.info
    assert np.array_equal(kept.image[:40], out.image[:40])  # far from the new stroke: exactly as it was
    marks = {"background": np.dstack([out.image, np.full((256, 256), 255, np.uint8)]), "layers": [], "composite": None}
    layer = np.zeros((256, 256, 4), np.uint8)
    layer[100:150, 100:150, 3] = 255
    marks["layers"] = [layer]
    rerolled = d.reroll_region(marks, value, 4, 99, 1.5, "tiny")
    assert isinstance(rerolled, demo.Rerolled) and "rerolled" in rerolled.info
    assert np.array_equal(rerolled.image[:32, :32], out.image[:32, :32])
    with pytest.raises(gr.Error, match="no class strokes"):
        blank = np.full((256, 256, 3), LABELMEFACADE.unknown_color, np.uint8)
        d.generate({"background": blank, "layers": [], "composite": blank}, 4, 0, 1.5, "tiny", False)
    with pytest.raises(gr.Error, match="Samples must be a whole number from 1 to 4"):
        d.generate(value, 4, 0, 1.5, "tiny", False, samples=9)


def test_the_first_view_is_an_example_and_its_picture(tmp_path):
    d = handlers(tmp_path)
    canvas, first = d.first_view()
    assert d.examples and first is not None
    sketch = cv2.cvtColor(cv2.imread(str(d.examples[0])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(canvas["composite"][..., :3],
                                  cv2.resize(sketch, (256, 256), interpolation=cv2.INTER_NEAREST))
    assert first.image.shape == (256, 256, 3) and first.image.std() > 0
    np.testing.assert_array_equal(first.image, d.generate(canvas, d.default_steps, 0, d.default_guidance, "tiny",
                                                          False).image)  # the default settings, seed 0


def test_shipped_checkpoint_is_discovered_and_loads():
    models = demo.discover_models(REPO / "checkpoints")
    assert "ours64" in models
    from sparsesis import Synthesizer

    synth = Synthesizer.from_pretrained(models["ours64"])
    assert synth.image_size == 64 and synth.classset == LABELMEFACADE
    assert "guide" not in models  # the teacher's guide lives inside its folder, not beside it as a model


def test_the_picture_caption_names_the_guidance_kind(tmp_path):
    import json
    from types import SimpleNamespace

    from sparsesis import Synthesizer

    plain = tiny_checkpoint(tmp_path / "plain")
    tiny_checkpoint(tmp_path / "auto")
    tiny_checkpoint(tmp_path / "auto" / "guide")
    cfg = json.loads((tmp_path / "auto" / "config.json").read_text())
    cfg["sampling"]["guide"] = "guide"
    (tmp_path / "auto" / "config.json").write_text(json.dumps(cfg))
    tiny_checkpoint(tmp_path / "both")
    tiny_checkpoint(tmp_path / "both" / "guide")
    cfg["sampling"]["cfg_scale"] = 2.0
    (tmp_path / "both" / "config.json").write_text(json.dumps(cfg))
    ids = np.full((32, 32), LABELMEFACADE.unknown_id)

    def caption(folder, guidance):
        pipe = SimpleNamespace(generator=Synthesizer.from_pretrained(folder), classset=LABELMEFACADE, output_size=128)
        return demo.Demo.describe(pipe, "m", 4, 0, guidance, "bicubic", ids, 1.0)

    assert "classifier-free 2 ·" in caption(plain, 2.0)
    assert "autoguidance 2.5 ·" in caption(tmp_path / "auto", 2.5)
    assert "autoguidance 1.5 + classifier-free 2 ·" in caption(tmp_path / "both", 1.5)
    student = Synthesizer.from_pretrained(REPO / "checkpoints" / "ours64-student4")
    text = demo.Demo.describe(SimpleNamespace(generator=student, classset=LABELMEFACADE, output_size=256),
                              "ours64-student4", 4, 0, 2.0, "bicubic", np.full((64, 64), 9), 1.0)
    assert "autoguidance 1.5 + classifier-free 2 (built in)" in text  # the student's own, not the slider's 2
    assert text.endswith("labelled")


@pytest.mark.browser
@pytest.mark.slow
def test_browser_draw_generate_256_and_reroll_a_marked_region(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium chromium-driver; .ci/run does)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1300, "height": 1100})
        page.goto(server)
        page.wait_for_selector("#canvas canvas", timeout=30000)
        page.wait_for_timeout(1500)
        # the first view: an example on the canvas and its picture, before anything is painted
        page.wait_for_selector("#result img", timeout=30000)
        first_view = fetch_rgb(server, page.get_attribute("#result img", "src"))
        page.screenshot(path=str(ARTIFACTS / "demo_first_view.png"), full_page=True)
        page.wait_for_selector("#examples img", timeout=30000)
        page.click("#canvas button[aria-label='Brush']")
        box = page.locator("#canvas canvas").first.bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

        def stroke(class_id, y0, y1):
            page.click("#canvas button[aria-label='Color']")
            page.locator("#canvas button.color").nth(class_id).click()
            page.keyboard.press("Escape")
            page.mouse.click(box["x"] + 5, box["y"] + 5)  # close the swatch popover
            page.click("#canvas button[aria-label='Brush']")
            for y in np.linspace(y0, y1, 4):
                page.mouse.move(cx - 90, cy + y)
                page.mouse.down()
                page.mouse.move(cx + 90, cy + y, steps=12)
                page.mouse.up()

        stroke(6, -140, -110)  # sky at the top
        stroke(1, 0, 60)  # building in the middle
        page.wait_for_timeout(500)
        view_src = page.get_attribute("#result img", "src")
        page.click("#generate")
        page.wait_for_function(f"document.querySelector('#result img').src !== {view_src!r}", timeout=60000)
        page.wait_for_function("!document.querySelector('#info').innerText.includes('processing')", timeout=60000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "demo_browser.png"), full_page=True)
        info = page.inner_text("#info")
        first_src = page.get_attribute("#result img", "src")
        natural = page.evaluate("document.querySelector('#result img').naturalWidth")

        # mark a region in the middle of the result and reroll it
        page.wait_for_timeout(1000)
        page.get_by_text("Reroll a region: paint over the part of the result to draw again").click()  # unfold it
        page.wait_for_selector("#marks canvas", timeout=30000)
        page.wait_for_timeout(1000)
        page.locator("#marks").scroll_into_view_if_needed()
        page.click("#marks button[aria-label='Brush']")
        mbox = page.locator("#marks canvas").first.bounding_box()
        mx, my = mbox["x"] + mbox["width"] / 2, mbox["y"] + mbox["height"] / 2
        for dy in (-12, 0, 12):
            page.mouse.move(mx - 30, my + dy)
            page.mouse.down()
            page.mouse.move(mx + 30, my + dy, steps=10)
            page.mouse.up()
        page.wait_for_timeout(500)
        page.fill("#seed input", "12345")
        page.click("#reroll")
        page.wait_for_function(f"document.querySelector('#result img').src !== {first_src!r}", timeout=60000)
        page.wait_for_function("document.querySelector('#info').innerText.includes('rerolled')", timeout=60000)
        page.wait_for_timeout(500)
        second_src = page.get_attribute("#result img", "src")
        page.screenshot(path=str(ARTIFACTS / "demo_browser_reroll.png"), full_page=True)
        reroll_info = page.inner_text("#info")
        browser.close()
    assert first_view.shape == (256, 256, 3) and first_view.std() > 0
    assert "ms" in info and "labelled" in info
    share = float(info.split("%")[0].split("·")[-1])
    assert 3 < share < 90  # strokes arrived as labels, not an empty canvas
    assert natural == demo.DISPLAY == 256  # a 256x256 result
    before, after = (fetch_rgb(server, src).astype(int) for src in (first_src, second_src))
    diff = np.abs(after - before).max(-1)
    assert "rerolled" in reroll_info
    for corner in (diff[:48, :48], diff[:48, -48:], diff[-48:, :48], diff[-48:, -48:]):
        assert corner.max() <= 1  # far from the marks: unchanged
    assert diff[96:160, 96:160].mean() > 3  # the marked middle: drawn again


def test_palette_and_legend_come_from_the_checkpoint(toy_root, tmp_path):
    """A checkpoint with another class set (4 toy classes) drives the demo's legend and brush colours."""
    from sparsesis.training.train import TrainConfig, train

    train(TrainConfig(run=str(tmp_path / "r"), data=str(toy_root), preset="tiny", image_size=32, batch_size=2,
                      steps=1, sample_every=10 ** 9, threads=2))
    app = demo.build_app({"toy": tmp_path / "r" / "export"})
    config = str(app.config)
    for name in ("ground", "wall", "sky", "tree"):
        assert name in config
    assert "#00a000" in config  # the 'tree' colour (0, 160, 0) is a brush swatch
    assert "window" not in config  # nothing of LabelMeFacade's classes


@pytest.mark.slow
def test_gan_baseline_checkpoints_are_offered_and_generate(toy_root, tmp_path):
    """A GAN baseline in checkpoints/ is listed after ours and generates through the same endpoint."""
    from sparsesis.training.train_gan import GanTrainConfig, train_gan

    root = tmp_path / "ckpts"
    tiny_checkpoint(root / "ours64")
    train_gan(GanTrainConfig(method="spade", run=str(tmp_path / "g"), data=str(toy_root), image_size=32,
                             batch_size=2, steps=1, threads=2), progress=False)
    shutil.copytree(tmp_path / "g" / "export", root / "spade32")
    (root / "notes").mkdir()
    (root / "notes" / "config.json").write_text('{"kind": "something-else"}')
    models = demo.discover_models(root)
    assert list(models) == ["ours64", "spade32"]
    app = demo.build_app(models)
    port = free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        from sparsesis.loader import load

        toy = load(models["spade32"]).classset
        value = layout_png(tmp_path / "lay.png", classes=(2, 1, 3), palette=toy)  # sky, wall, tree in its palette
        # a GAN takes the seed as its noise: same seed, same image; another seed, another image
        a = client.predict(value, 4, 1, 1.5, "spade32", True, api_name="/generate")
        b = client.predict(value, 4, 1, 1.5, "spade32", False, api_name="/generate")
        c = client.predict(value, 4, 2, 1.5, "spade32", False, api_name="/generate")
        img_a = read_rgb(a[0])
        assert img_a.shape == (demo.DISPLAY, demo.DISPLAY, 3)
        np.testing.assert_array_equal(img_a, read_rgb(b[0]))
        assert not np.array_equal(img_a, read_rgb(c[0]))
        assert "GAN" in a[3] and a[1] == []  # no denoising steps to show
    finally:
        app.close()


def test_api_upscaler_switch_samples_and_keep_the_rest(server, tmp_path):
    client = Client(server, verbose=False)
    value = layout_png(tmp_path / "lay.png")
    learned = client.predict(value, 4, 3, 1.5, "tiny", False, "learned upsampler", api_name="/generate")
    bicubic = client.predict(value, 4, 3, 1.5, "tiny", False, "bicubic", api_name="/generate")
    a, b = read_rgb(learned[0]), read_rgb(bicubic[0])
    assert a.shape == b.shape == (demo.DISPLAY, demo.DISPLAY, 3) and not np.array_equal(a, b)
    assert "via learned" in learned[3] and "via bicubic" in bicubic[3]
    several = client.predict(value, 4, 3, 1.5, "tiny", False, "learned upsampler", 3, api_name="/generate")
    assert len(several[4]) == 3 and np.array_equal(read_rgb(several[4][0]["image"]), a)  # sample 0 = seed 3
    # keep the rest: a new stroke redraws only around itself (the tiny model is 32 px: 128 after the upsampler)
    edited = layout_png(tmp_path / "edit.png")
    img = cv2.imread(str(tmp_path / "edit.png"), cv2.IMREAD_UNCHANGED)
    img[20:40, 20:40, :3] = LABELMEFACADE.colors[3][::-1]  # a door stroke (BGR on disk)
    cv2.imwrite(str(tmp_path / "edit.png"), img)
    kept = client.predict(edited, 4, 3, 1.5, "tiny", False, "learned upsampler", 1, None, 1.0, True,
                          api_name="/generate")
    k = read_rgb(kept[0]).astype(int)
    assert "kept the rest" in kept[3]
    far = np.ones(k.shape[:2], bool)
    far[:100, :100] = False  # the stroke, its neighbourhood and the upsampler's footprint, at 256
    near_change = np.abs(k - a)[20:40, 20:40].mean()
    assert np.abs(k - a)[far].max() <= 1 and near_change > 3  # display resize rounding at most


def test_api_reroll_region_changes_only_the_marked_region(server, tmp_path):
    client = Client(server, verbose=False)
    value = layout_png(tmp_path / "lay.png")
    out = client.predict(value, 4, 5, 1.5, "tiny", False, api_name="/generate")
    image = cv2.imread(out[0], cv2.IMREAD_UNCHANGED)
    marked = image.copy()
    marked[150:230, 30:130, :3] = (255, 0, 255)  # painted over the result
    cv2.imwrite(str(tmp_path / "bg.png"), image)
    cv2.imwrite(str(tmp_path / "marked.png"), marked)
    marks = {"background": handle_file(str(tmp_path / "bg.png")), "layers": [],
             "composite": handle_file(str(tmp_path / "marked.png"))}
    again = client.predict(marks, value, 4, 99, 1.5, "tiny", api_name="/reroll_region")
    before, after = read_rgb(out[0]).astype(int), read_rgb(again[0]).astype(int)
    region = np.zeros(before.shape[:2], bool)
    # the marks, widened to whole cells of the 32 px model (8 px here) and by the upsampler's footprint (16 px)
    region[150 - 28:230 + 28, 30 - 28:130 + 28] = True
    assert np.abs(after - before)[~region].max() <= 1
    assert np.abs(after - before)[150:230, 30:130].mean() > 3
    assert "rerolled" in again[1]
    with pytest.raises(Exception, match="No region marked"):
        client.predict({"background": handle_file(str(tmp_path / "bg.png")), "layers": [],
                        "composite": handle_file(str(tmp_path / "bg.png"))}, value, 4, 1, 1.5, "tiny",
                       api_name="/reroll_region")


def test_api_layout_from_photo_fills_the_canvas(server, tmp_path):
    client = Client(server, verbose=False)
    photo = cv2.imread(str(REPO / "examples" / "01_static_street_outdoor_palma_mallorca_spa_photo.png"))
    cv2.imwrite(str(tmp_path / "photo.png"), photo)
    full = client.predict(handle_file(str(tmp_path / "photo.png")), False, 0, api_name="/layout_from_photo")
    thin = client.predict(handle_file(str(tmp_path / "photo.png")), True, 0, api_name="/layout_from_photo")
    ids_full = LABELMEFACADE.colors_to_ids(read_rgb(full["composite"]))
    ids_thin = LABELMEFACADE.colors_to_ids(read_rgb(thin["composite"]))
    assert ids_full.shape == (demo.CANVAS, demo.CANVAS)
    assert (ids_full != LABELMEFACADE.unknown_id).mean() == 1.0  # the segmenter labels every pixel
    assert 0 < (ids_thin != LABELMEFACADE.unknown_id).mean() < 0.5  # a sketch
