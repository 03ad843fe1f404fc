#!/usr/bin/env python3
"""Memory under clients that hold partial frames (issue 10, item 3).

    partial_frames.py PORT PID

250 connections each declare a Dubbo frame of 8 MiB - 1 (under the default max_frame_size) and
send all but 128 KiB of it, then hold; then all close. Prints the proxy's (PID) resident memory
before, at its peak, and 2 s after the clients closed.
"""
import asyncio, struct, sys, os, time
PORT=int(sys.argv[1]); PID=int(sys.argv[2]); N=250; BODY=8*1024*1024-16-1
def rss():
    with open(f"/proc/{PID}/status") as f:
        for l in f:
            if l.startswith("VmRSS"): return int(l.split()[1])//1024
async def hog(i, results):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", PORT)
        w.write(b"\xda\xbb\xc2\x00" + struct.pack(">QI", i+1, BODY))
        chunk = b"N" * 65536
        sent = 0
        while sent < BODY - 65536*2:
            w.write(chunk); sent += len(chunk)
            await w.drain()
        results.append(("held", sent))
        return r, w
    except Exception as e:
        results.append(("closed", str(e)[:40]))
        return None
async def main():
    results=[]
    base = rss()
    conns = await asyncio.gather(*(hog(i, results) for i in range(N)))
    peak = rss()
    await asyncio.sleep(1)
    peak = max(peak, rss())
    held = sum(1 for r in results if r[0]=="held")
    for c in conns:
        if c: c[1].close()
    await asyncio.sleep(2)
    after = rss()
    print(f"rss before {base} MiB, peak {peak} MiB, after close {after} MiB; {held} of {N} connections got their 8 MiB-1 frame nearly whole in")
asyncio.run(main())
