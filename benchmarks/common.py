"""What the benchmark scripts share. Importing it puts the repository on ``sys.path``, so every script runs from
a plain checkout after the README's install (``python benchmarks/<script>.py``), package installed or not."""
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def add_threads(parser, default: int | None = 2) -> None:
    """``--threads``: CPU threads for torch (None: torch's default)."""
    parser.add_argument("--threads", type=int, default=default,
                        help=f"CPU threads for torch (default: {default if default else 'all'})")


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def parse_with_data_threads_out(parser, argv=None, threads: int | None = 2):
    """Add ``--data``, ``--threads`` and a required ``--out`` to ``parser``, parse ``argv`` and set the threads."""
    parser.add_argument("--data", default=None, help="data folder (default: $SPARSESIS_DATA)")
    add_threads(parser, threads)
    parser.add_argument("--out", required=True)
    a = parser.parse_args(argv)
    set_threads(a.threads)
    return a


def split_named(flag: str, spec: str) -> tuple[str, str]:
    """A ``NAME=FOLDER`` argument of ``flag`` -> (name, folder); ValueError for any other form."""
    name, sep, folder = spec.partition("=")
    if not sep or not name or not folder:
        raise ValueError(f"{flag} takes NAME=FOLDER, got {spec!r}")
    return name, folder


def command_line(script, argv=None) -> str:
    """``script`` (a benchmark's ``__file__``) run with ``argv`` (default ``sys.argv[1:]``), as a user would type it
    from the repository root: ``python benchmarks/<name>.py ...``."""
    script = Path(script).resolve()
    name = script.relative_to(REPO) if script.is_relative_to(REPO) else script.name
    return " ".join(["python", str(name), *(sys.argv[1:] if argv is None else argv)])


def write_result(path, result: dict, indent: int = 2, models=None) -> None:
    """Write ``result`` as JSON to ``path`` atomically (nothing when ``path`` is None) and print it. A result
    without a ``command`` (or ``commands``) gets the one that ran this process (a ``main(argv)`` called from
    elsewhere puts its own ``command_line(__file__, argv)`` in the result); ``models`` (folders) adds the commit
    and the weights' hashes (``provenance``)."""
    from sparsesis.models.checkpoint import save_json_atomic
    from sparsesis.evaluation.provenance import provenance

    if "command" not in result and "commands" not in result:  # (a result made in parts lists its commands)
        result = {**result, "command": command_line(sys.argv[0])}
    if models is not None:
        result = {**result, **provenance(models)}
    if path:
        save_json_atomic(path, result)
    print(json.dumps(result, indent=indent))
