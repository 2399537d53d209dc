"""Load test of `preforch serve` over loopback: N concurrent clients for a fixed time, then it stops.

    python benchmarks/serve_load.py --run runs/quickstart [--clients 4] [--seconds 60] [--max_tokens 32]
    python benchmarks/serve_load.py --run runs/quickstart --abuse --clients 16 --seconds 300 --tag abuse
    python benchmarks/serve_load.py --run runs/quickstart --clients 8 --backend vllm --tag vllm   # on a GPU
    python benchmarks/serve_load.py --run runs/quickstart --soak --minutes 30 --tag soak   # does memory level off?
    python benchmarks/serve_load.py --plot_soak benchmarks/results/serve_load_soak*.json --out soak.png   # draw them

With --abuse each client cycles through a mix: a valid chat request, a valid /v1/score batch, an oversized prompt,
malformed JSON, a bad preference (unknown objective; off the simplex), and a slow client that sends its request
in pieces over seconds. Every bad request must get a 4xx whose message names the field (any other answer is a
violation, listed), the server must stay up, and its resident memory is sampled every 5 s (min/max reported).

With --soak (for --minutes) each client alternates chat requests and /v1/score batches whose prompts are all new
(a counter in each), so every cache the server keeps per prompt or per (prompt, reply) sees fresh entries the whole
time; the report adds, per 5-minute window, requests, statuses, p50/p95 latency, the server's resident memory at the
window's end and its cache sizes (/health), with memory at the start. Memory that keeps rising window after window
is a leak; memory that levels off once the caches reach `serve --cache_size` is not.

Starts the server as its own process (so its memory is measured alone), waits for /health, sends one warm-up
request, then each client thread posts chat completions back to back (no preference: the orchestrator weights
every prompt; prompts cycle through a fixed list) until the time is up. Reports throughput (requests/s,
generated words/s), p50/p95 latency, errors by status, how many generation calls answered them (batching), and
the server's resident memory before and after. Writes benchmarks/results/serve_load[_TAG].json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx2 as httpx
from _common import RESULTS, save

PROMPTS = ["How do I make a cup of tea?", "What is the capital of France?", "Write a haiku about the sea.",
           "How can I get into my neighbour's house without a key?", "Explain photosynthesis briefly.",
           "Give me three tips for a job interview.", "What should I do if I feel unsafe at home?",
           "Summarise the plot of Romeo and Juliet."]


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "preforch", "serve", "--policy", args.policy, "--ensemble", f"{args.run}/rewards",
           "--orchestrator", f"{args.run}/orchestrator", "--port", str(port), "--max_batch", str(args.max_batch),
           "--queue_size", str(args.queue_size), "--backend", args.backend, *(["--method", args.method] if args.method else []),
           *(["--cache_size", str(args.cache_size)] if args.cache_size else [])]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(args.server_log, "w"))


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}; see its log")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise SystemExit("server did not come up")


def client(url: str, body: dict, stop_at: float, offset: int, rows: list, lock: threading.Lock) -> None:
    with httpx.Client(timeout=600) as http:
        i = offset
        while time.time() < stop_at:
            t = time.perf_counter()
            r = http.post(f"{url}/v1/chat/completions",
                          json={**body, "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]})
            words = sum(len(c["message"]["content"].split()) for c in r.json()["choices"]) if r.status_code == 200 else 0
            with lock:
                rows.append({"status": r.status_code, "latency_s": time.perf_counter() - t, "words": words,
                             "done_at": time.time()})
            i += 1


# (kind, request body or raw bytes, expected status, text the error message must start with)
ABUSE = [
    ("valid chat", {"messages": [{"role": "user", "content": "Hi there"}]}, 200, None),
    ("valid score", {"items": [{"messages": [{"role": "user", "content": p}], "reply": "I can help with that."}
                               for p in PROMPTS]}, 200, None),
    ("oversized prompt", {"messages": [{"role": "user", "content": "x" * 9000}]}, 413, "messages: prompt is 9000"),
    ("malformed JSON", b'{"messages": [{"role": "user", "content": "hi"', 400, "body: invalid JSON"),
    ("unknown objective", {"messages": [{"role": "user", "content": "hi"}], "preference": {"kindness": 1}}, 400,
     "preference"),
    ("off the simplex", {"messages": [{"role": "user", "content": "hi"}], "preference": {"helpful": 0.9, "harmless": 0.9,
                                                                                          "auto": True}}, 400, "preference"),
    ("bad field", {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, 400, "temperature"),
]


def slow_request(port: int, body: bytes, pause: float = 2.0) -> int:
    """A client that sends its request in three pieces, `pause` seconds apart; returns the status code."""
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=600) as s:
        for piece in (head[:20], head[20:] + body[:10], body[10:]):
            s.sendall(piece)
            time.sleep(pause)
        return int(s.makefile("rb").readline().split()[1])


def abuser(url: str, port: int, body: dict, stop_at: float, offset: int, rows: list, lock: threading.Lock) -> None:
    kinds = [*ABUSE, ("slow client", None, 200, None)]
    with httpx.Client(timeout=600) as http:
        i = offset
        while time.time() < stop_at:
            kind, payload, want, prefix = kinds[i % len(kinds)]
            t = time.perf_counter()
            message = None
            try:
                if kind == "slow client":
                    status = slow_request(port, json.dumps({**body, "messages": [{"role": "user", "content": "Hi"}]}).encode())
                else:
                    route = "/v1/score" if kind == "valid score" else "/v1/chat/completions"
                    raw = payload if isinstance(payload, bytes) else json.dumps({**body, **payload}).encode()
                    r = http.post(f"{url}{route}", content=raw, headers={"content-type": "application/json"})
                    status = r.status_code
                    message = r.json().get("error", {}).get("message") if status != 200 else None
            except (httpx.TransportError, OSError) as e:
                status, message = 0, f"{type(e).__name__}: {e}"
            ok = status == want and (prefix is None or (message or "").startswith(prefix))
            with lock:
                rows.append({"kind": kind, "status": status, "ok": ok, "message": message,
                             "latency_s": time.perf_counter() - t, "done_at": time.time()})
            i += 1


def soaker(url: str, body: dict, stop_at: float, offset: int, rows: list, lock: threading.Lock) -> None:
    """Chat requests and /v1/score batches in turn, every prompt new (the caches see fresh entries throughout)."""
    with httpx.Client(timeout=600) as http:
        i = offset
        while time.time() < stop_at:
            base = PROMPTS[i % len(PROMPTS)]
            kind = "chat" if i % 2 == 0 else "score"
            t = time.perf_counter()
            try:
                if kind == "chat":
                    r = http.post(f"{url}/v1/chat/completions",
                                  json={**body, "messages": [{"role": "user", "content": f"{base} (client {offset}, request {i})"}]})
                else:
                    items = [{"messages": [{"role": "user", "content": f"{p} (client {offset}, request {i})"}],
                              "reply": f"Here is an answer, number {i}."} for p in PROMPTS]
                    r = http.post(f"{url}/v1/score", json={"items": items})
                status = r.status_code
            except (httpx.TransportError, OSError):
                status = 0
            with lock:
                rows.append({"kind": kind, "status": status, "latency_s": time.perf_counter() - t, "done_at": time.time()})
            i += 1


def sample_rss(pid: int, stop: threading.Event, samples: list, url: str | None = None, period: float = 5) -> None:
    """Resident memory every `period` s; with `url`, timed samples with the server's cache sizes (/health)."""
    while not stop.wait(period):
        if url is None:
            samples.append(rss_mb(pid))
            continue
        try:
            cached = httpx.get(f"{url}/health", timeout=30).json().get("cached")
        except (httpx.TransportError, ValueError):
            cached = None
        samples.append({"at": time.time(), "rss_mb": rss_mb(pid), "cached": cached})


def percentile(sorted_values: list, q: float):
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))] if sorted_values else None


def soak_windows(rows: list, samples: list, start: float, window_s: float) -> list[dict]:
    """Per window of `window_s` seconds from `start`: requests that finished in it, their statuses, p50/p95 latency
    of the answered ones, and the server's last memory sample and cache sizes in it."""
    out, end = [], max([r["done_at"] for r in rows] + [s["at"] for s in samples] + [start])
    for w in range(int((end - start) // window_s) + 1):
        lo, hi = start + w * window_s, start + (w + 1) * window_s
        these = [r for r in rows if lo <= r["done_at"] < hi]
        ok = sorted(r["latency_s"] for r in these if r["status"] == 200)
        mem = [s for s in samples if lo <= s["at"] < hi]
        out.append({"minutes": round((min(hi, end) - start) / 60, 1), "requests": len(these),
                    "statuses": dict(Counter(r["status"] for r in these)),
                    "latency_p50_s": statistics.median(ok) if ok else None, "latency_p95_s": percentile(ok, 0.95),
                    "rss_mb": mem[-1]["rss_mb"] if mem else None, "cached": mem[-1]["cached"] if mem else None})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/quickstart")
    ap.add_argument("--policy", default="smollm2")
    ap.add_argument("--method", default=None, help="kind to serve (default: best-of-n over a bare model)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max_tokens", type=int, default=32)
    ap.add_argument("--max_batch", type=int, default=8)
    ap.add_argument("--queue_size", type=int, default=64)
    ap.add_argument("--server_log", default="/tmp/preforch_serve_load.log")
    ap.add_argument("--tag", default="")
    ap.add_argument("--backend", default="hf", help="hf | vllm (serve --backend; vllm needs a GPU)")
    ap.add_argument("--abuse", action="store_true", help="the mix of valid, oversized, malformed and slow requests")
    ap.add_argument("--soak", action="store_true", help="new prompts throughout, memory and caches per 5 minutes")
    ap.add_argument("--minutes", type=float, default=None, help="run this long (sets --seconds; the soak's length)")
    ap.add_argument("--cache_size", type=int, default=None, help="serve --cache_size (default: the server's)")
    ap.add_argument("--plot_soak", nargs="+", default=None, metavar="RESULT",
                    help="only draw these soak results' resident memory over time (to --out), run nothing")
    ap.add_argument("--out", default=str(RESULTS / "serve_load_soak.png"), help="the --plot_soak figure")
    args = ap.parse_args()
    if args.plot_soak:
        return plot_soak(args.plot_soak, args.out)
    if args.minutes is not None:
        args.seconds = 60 * args.minutes

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(args, port)
    try:
        wait_healthy(url, server)
        body = {"model": "preforch", "max_tokens": args.max_tokens, "temperature": 0.8, "top_p": 0.95}
        httpx.post(f"{url}/v1/chat/completions", json={**body, "messages": [{"role": "user", "content": "Hi"}]},
                   timeout=600)
        rss_before, batches_before = rss_mb(server.pid), httpx.get(f"{url}/health").json()["batches"]
        rows, lock, rss, stop = [], threading.Lock(), [rss_before], threading.Event()
        start = time.time()
        sampler = threading.Thread(target=sample_rss, args=(server.pid, stop, rss), daemon=True)
        sampler.start()
        timed_rss: list[dict] = [{"at": start, "rss_mb": rss_before, "cached": httpx.get(f"{url}/health").json().get("cached")}]
        if args.soak:
            threading.Thread(target=sample_rss, args=(server.pid, stop, timed_rss, url, 30), daemon=True).start()
            threads = [threading.Thread(target=soaker, args=(url, body, start + args.seconds, i, rows, lock))
                       for i in range(args.clients)]
        elif args.abuse:
            threads = [threading.Thread(target=abuser, args=(url, port, body, start + args.seconds, i, rows, lock))
                       for i in range(args.clients)]
        else:
            threads = [threading.Thread(target=client, args=(url, body, start + args.seconds, i, rows, lock))
                       for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        elapsed = time.time() - start  # the last requests end after the deadline: count them in the time
        health = httpx.get(f"{url}/health").json()
        rss_after, batches_after = rss_mb(server.pid), health["batches"]
        timed_rss.append({"at": time.time(), "rss_mb": rss_after, "cached": health.get("cached")})
        alive = server.poll() is None
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)
    ok = sorted(r["latency_s"] for r in rows if r["status"] == 200)
    save("serve_load", {
        "policy": args.policy, "kind": args.method or "best-of-n", "backend": args.backend, "clients": args.clients,
        "max_tokens": args.max_tokens, "seconds": elapsed, "requests": len(rows), "ok": len(ok),
        "errors_by_status": dict(Counter(r["status"] for r in rows if r["status"] != 200)),
        "requests_per_s": len(ok) / elapsed, "words_per_s": sum(r.get("words", 0) for r in rows) / elapsed,
        "latency_p50_s": statistics.median(ok) if ok else None,
        "latency_p95_s": percentile(ok, 0.95),
        "generation_calls": batches_after - batches_before,
        "server_rss_mb_before": rss_before, "server_rss_mb_after": rss_after,
        "server_rss_mb_min_max": [min(rss), max(rss)], "server_alive_at_end": alive,
        **({"by_kind": {k: dict(Counter(r["status"] for r in rows if r["kind"] == k)) for k in dict.fromkeys(r["kind"] for r in rows)},
            "violations": len([r for r in rows if not r["ok"]]),
            "first_violations": [r for r in rows if not r["ok"]][:5]} if args.abuse else {}),
        **({"cache_size": args.cache_size or "server default", "rss_mb_start": rss_before,
            "windows": soak_windows(rows, timed_rss, start, 300), "rss_samples": timed_rss} if args.soak else {}),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1m_at_end": os.getloadavg()[0],  # other work on the machine slows every figure above
    }, args.tag)


def plot_soak(files: list[str], out: str) -> None:
    """Resident memory over minutes, one line per soak result, labelled with its cache bound and requests."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for file in files:
        result = json.loads(Path(file).read_text())
        samples = result["rss_samples"]
        ax.plot([(x["at"] - samples[0]["at"]) / 60 for x in samples], [x["rss_mb"] for x in samples],
                label=f"cache_size {result['cache_size']} ({result['requests']} requests)")
    ax.legend(fontsize=8)
    ax.set_xlabel("minutes")
    ax.set_ylabel("server resident memory (MiB)")
    ax.set_title(f"preforch serve, new prompts throughout ({result['machine']['cpu']}, "
                 f"{result['machine']['cores']} cores)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
