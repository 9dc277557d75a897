"""Runs one command and reports what it cost as a whole process: wall time from its spawn to
its exit, and its CPU time (user and system, from wait4's rusage, microsecond resolution, its
threads and waited-for children included) and peak RSS. GNU time rounds CPU time to 10 ms,
too coarse for start-up figures; CPU time is what a busy machine stretches least (wall time
also holds the time the process waited for a core).

    python3 bench/rusage.py OUT_FILE COMMAND [ARGS...]

The command inherits stdin/stdout/stderr; one JSON line goes to OUT_FILE:
{"wallMs", "userMs", "sysMs", "cpuMs", "maxRssKB", "status"} (status: the exit code, or
128 + the signal). This process exits 0 unless the command could not be started (127).
"""

import json
import os
import sys
import time


def main():
    out, argv = sys.argv[1], sys.argv[2:]
    t0 = time.perf_counter()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ)
    except OSError as e:
        sys.stderr.write(f"rusage.py: cannot start {argv[0]}: {e}\n")
        return 127
    _, status, ru = os.wait4(pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    user, sys_ = ru.ru_utime * 1000, ru.ru_stime * 1000
    with open(out, "w") as f:
        f.write(json.dumps({"wallMs": wall, "userMs": user, "sysMs": sys_, "cpuMs": user + sys_, "maxRssKB": ru.ru_maxrss, "status": code}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
