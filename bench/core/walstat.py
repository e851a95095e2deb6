#!/usr/bin/env python3
"""Where a registry's writes go: the frames of a SQLite WAL, by commit and by b-tree.

    python3 bench/core/walstat.py DB WAL [DB_FOR_NAMES]

WAL is a copy of DB's -wal file taken while the core runs (a checkpoint
that restarts the WAL overwrites it from the start; frames from before the
restart carry other salts and are left out). Each frame is one whole page
written by one commit; a commit's last frame says so. Pages are named by
the table or index that owns them (SQLite's dbstat on DB_FOR_NAMES, DB by
default: a copy taken with the WAL beside it names the pages as the WAL
left them). Prints frames per commit and the frames of each b-tree, with
how many distinct pages they were: a b-tree whose frames are many more
than its pages is rewritten commit after commit (a hot page: a counter,
the tail of an append-only table); one whose frames equal its pages is
touched at random places (one page per change).
"""
import collections
import sqlite3
import statistics
import struct
import sys


def frames(path):
    with open(path, "rb") as f:
        head = f.read(32)
        if len(head) < 32:
            return 0, []
        magic, _ver, psz, _seq, s1, s2 = struct.unpack(">6I", head[:24])
        if magic not in (0x377F0682, 0x377F0683):
            sys.exit("walstat: %s is not a WAL" % path)
        out = []
        while True:
            fh = f.read(24)
            if len(fh) < 24:
                break
            pg, commit, fs1, fs2 = struct.unpack(">4I", fh[:16])
            if (fs1, fs2) != (s1, s2):
                break  # the rest is from before the WAL restarted
            f.seek(psz, 1)
            out.append((pg, commit))
        return psz, out


def names(db):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    m = {}
    for name, pageno in c.execute("SELECT name, pageno FROM dbstat"):
        m[pageno] = name
    c.close()
    return m


def main():
    db, wal = sys.argv[1], sys.argv[2]
    psz, fr = frames(wal)
    if not fr:
        print("walstat: no frames")
        return
    owner = names(sys.argv[3] if len(sys.argv) > 3 else db)
    per_commit, n = [], 0
    for _pg, commit in fr:
        n += 1
        if commit:
            per_commit.append(n)
            n = 0
    total = len(fr)
    print("page size %d, %d frames (%.1f MiB), %d commits" % (psz, total, total * (psz + 24) / 2**20,
                                                              len(per_commit)))
    if per_commit:
        q = sorted(per_commit)
        print("frames per commit: mean %.1f, median %d, p90 %d, max %d" % (
            statistics.mean(q), q[len(q) // 2], q[int(len(q) * 0.9)], q[-1]))
    by = collections.Counter()
    pages = collections.defaultdict(set)
    for pg, _ in fr:
        o = owner.get(pg, "(new or freed page)")
        by[o] += 1
        pages[o].add(pg)
    print("%-34s %9s %7s %9s %9s" % ("b-tree", "frames", "share", "pages", "frames/pg"))
    for o, k in by.most_common():
        print("%-34s %9d %6.1f%% %9d %9.1f" % (o, k, 100.0 * k / total, len(pages[o]),
                                                k / len(pages[o])))


main()
