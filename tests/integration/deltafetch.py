"""deltafetch.py: the agent's side of `ringil install --fetch-stdio`, served from a bundle file, for tests.

It answers the installer's `fetch OFFSET LENGTH` / `end` batches with the bundle's bytes (or with bytes a
test chose to corrupt), records every range asked for, and returns the installer's exit status and output.
"""
import subprocess
import tempfile


class FetchResult:
    def __init__(self, returncode, out, err, ranges, plans, sent, meta_end):
        self.returncode, self.out, self.err = returncode, out, err
        self.meta_end = meta_end  # where the payloads start: header + manifest + signature
        self.ranges = ranges     # every (offset, length) asked for, in order, batch by batch
        self.plans = plans       # the installer's "plan LOCAL FETCH TOTAL MODE" lines
        self.sent = sent         # bytes sent to the installer

    @property
    def payload_ranges(self):
        """Ranges of payload bytes (after the header, manifest and signature)."""
        return [r for r in self.ranges if r[0] >= self.meta_end]


def fetch_install(ringil, conf, bundle, *args, env=None, tamper=None, stop_after=None, ignore_ranges=False,
                  timeout=120):
    """Run `ringil install --fetch-stdio` and serve its batches from `bundle`.

    tamper(offset, data) -> data may change the bytes of one answered range; stop_after=N closes stdin after N
    bytes (an interrupted download); ignore_ranges sends the bundle from byte 0 whatever is asked (a
    misbehaving agent: the installer must refuse, not write)."""
    data = open(bundle, "rb").read()
    err = tempfile.TemporaryFile()
    p = subprocess.Popen([str(ringil), "install", "--config", str(conf), "--fetch-stdio", "--fetch-size",
                          str(len(data)), *[str(a) for a in args], "-"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
    ranges, plans, out, batch, sent = [], [], [], [], 0
    stream_pos = 0
    try:
        for raw in p.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            parts = line.split()
            if parts[:1] == ["fetch"] and len(parts) == 3:
                batch.append((int(parts[1]), int(parts[2])))
                continue
            if line == "end":
                ranges.extend(batch)
                for off, length in batch:
                    chunk = data[stream_pos:stream_pos + length] if ignore_ranges else data[off:off + length]
                    stream_pos += length
                    if tamper:
                        chunk = tamper(off, chunk)
                    if stop_after is not None and sent + len(chunk) > stop_after:
                        chunk = chunk[: max(0, stop_after - sent)]
                        p.stdin.write(chunk)
                        sent += len(chunk)
                        p.stdin.close()
                        break
                    p.stdin.write(chunk)
                    sent += len(chunk)
                if not p.stdin.closed:
                    p.stdin.flush()
                batch = []
                continue
            if parts[:1] == ["plan"]:
                plans.append(line)
                continue
            out.append(line)
    except BrokenPipeError:
        pass
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
    rc = p.wait(timeout=timeout)
    err.seek(0)
    meta_end = 32 + int.from_bytes(data[16:20], "big") + int.from_bytes(data[20:24], "big")
    return FetchResult(rc, "\n".join(out), err.read().decode(errors="replace"), ranges, plans, sent, meta_end)
