"""`python -m harness.engine.worker BACKEND REQUEST_FD ANSWER_FD CONFIG_JSON`: the persistent worker process of
harness/engine/isolation.py. Reads one JSON request per line from REQUEST_FD (the case as data), answers one JSON line
tagged with the request's id on ANSWER_FD; file descriptors 1 and 2 are the crash log, so whatever a backend's
native code prints cannot reach the protocol. A crash here kills only this process."""

from __future__ import annotations

import json
import os
import sys

from harness.engine.backend import instance
from harness.cases.load import case_from_data
from harness.engine.config import RunConfig
from harness.engine.execute import execute
from harness.engine.isolation import answer_for


def main() -> None:
    backend_name, request_fd, answer_fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    config = RunConfig.from_dict(json.loads(sys.argv[4]))
    os.dup2(2, 1)  # fd 1 (native printf) goes where stderr goes: the crash log, never the protocol
    sys.stdout = sys.stderr
    requests = os.fdopen(request_fd, "rb")
    answers = os.fdopen(answer_fd, "wb")

    def send(answer: dict) -> None:
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()

    backend = instance(backend_name)
    backend.configure(config)
    send({"id": None, "ready": True})  # started: request timeouts count from here
    for line in requests:
        request = json.loads(line)
        case = case_from_data(request["case"])
        lacking = backend.skip_reason(case) if request["op"] == "run" else None
        if lacking:
            answer = {"skip_reason": lacking}
        else:  # "run" (a feature check, then the case: one round trip) or "execute" (the case alone)
            answer = answer_for(execute(backend, case))
        send({"id": request["id"], **answer})


if __name__ == "__main__":
    main()
