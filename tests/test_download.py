"""The download command's offline path: extraction from a local zip, checksum verification."""
import hashlib
import zipfile

import pytest

from sparsesis import download as dl


def make_zip(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"labelmefacade-{dl.COMMIT}/{name}", data)
    return path


FILES = {"images/a.jpg": b"jpegbytes", "labels/a.png": b"pngbytes", "train.txt": b"images/a.jpg\n",
         "test.txt": b"", "README.md": b"not kept"}


def sums(files):
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items() if k != "README.md"}


def test_extract_verifies_and_keeps_only_dataset_files(tmp_path):
    archive = make_zip(tmp_path / "a.zip", FILES)
    dest = dl.extract(archive, tmp_path / "out", sums(FILES))
    assert (dest / "images" / "a.jpg").read_bytes() == b"jpegbytes"
    assert not (dest / "README.md").exists()
    assert dl.verify(dest, sums(FILES)) == []


def test_corrupt_file_is_reported_and_nothing_is_left(tmp_path):
    files = dict(FILES, **{"labels/a.png": b"tampered"})
    archive = make_zip(tmp_path / "a.zip", files)
    with pytest.raises(dl.DownloadError, match="labels/a.png"):
        dl.extract(archive, tmp_path / "out", sums(FILES))
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]


def test_not_a_zip(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"nope")
    with pytest.raises(dl.DownloadError, match="not a readable zip"):
        dl.extract(tmp_path / "x.zip", tmp_path / "out", {})


def test_shipped_checksums_cover_the_dataset():
    c = dl.shipped_checksums()
    assert sum(k.startswith("images/") for k in c) == 945 and sum(k.startswith("labels/") for k in c) == 945


def test_no_network_gives_actionable_error(tmp_path):
    with pytest.raises(dl.DownloadError, match="--archive"):
        dl.download("http://127.0.0.1:9/nothing.zip", tmp_path / "x.zip")


@pytest.mark.data
def test_local_copy_verifies(lmf_root):
    c = dl.shipped_checksums()
    sample = dict(list(c.items())[:20])
    assert dl.verify(lmf_root, sample) == []
