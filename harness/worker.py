"""`python -m harness.worker BACKEND`: the persistent worker process of harness/isolation.py. Reads one JSON
request per line, answers one JSON line; a crash here kills only this process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .backend import instance
from .caseload import load_file
from .execute import execute
from .isolation import answer_for


def main() -> None:
    backend = instance(sys.argv[1])
    cases: dict[tuple[str, str], dict] = {}
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a backend prints must not corrupt the protocol
    out.write(json.dumps({"ready": True}) + "\n")  # started: request timeouts count from here
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        key = (request["file"], request["root"])
        if key not in cases:
            cases[key] = {c.id: c for c in load_file(Path(request["file"]), Path(request["root"]))}
        case = cases[key][request["case_id"]]
        if request["op"] == "skip_reason":
            answer = {"skip_reason": backend.skip_reason(case)}
        else:
            answer = answer_for(execute(backend, case))
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
