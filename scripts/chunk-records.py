#!/usr/bin/env python3
"""Splits what `lmic train --dump-chunks` wrote into DIR/{base,extra}.{train,val}.bin
into the files the trainers read:

    chunk-records.py DIR [--seed S] [--full]

  DIR/sub.train.bin   a seeded share of every training chunk that fits, as
                      xz, in the device machine's 64 MiB carry
                      (scripts/prepare-gpu-data.sh)
  DIR/full.train.bin  with --full instead: every training chunk
                      (scripts/train-fast.sh, on this machine)
  DIR/all.val.bin     the first 4 chunks of the base validation files, then
                      12,000 drawn from both validation splits
"""
import argparse
import random


def records(p):
    # [len u16][carried u8][carried tokens][len tokens]
    b = open(p, 'rb').read()
    at, out = 0, []
    while at < len(b):
        n, c = b[at] | (b[at + 1] << 8), b[at + 2]
        out.append(b[at:at + 3 + c + n])
        at += 3 + c + n
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--full", action="store_true")
    a = ap.parse_args()
    d = a.dir
    train = records(f'{d}/base.train.bin') + records(f'{d}/extra.train.bin')
    if a.full:
        open(f'{d}/full.train.bin', 'wb').write(b''.join(train))
    else:
        r = random.Random(a.seed)
        train = [x for x in train if r.random() < 0.8]
        # The carried tokens make records longer: a second seeded draw keeps the
        # xz (with the tracked tree, about 8.7 MB) under the 64 MiB the device takes.
        r = random.Random(2)
        train = [x for x in train if r.random() < 0.93]
        open(f'{d}/sub.train.bin', 'wb').write(b''.join(train))
    base, extra = records(f'{d}/base.val.bin'), records(f'{d}/extra.val.bin')
    rest = base[4:] + extra
    random.Random(0).shuffle(rest)
    open(f'{d}/all.val.bin', 'wb').write(b''.join(base[:4] + rest[:12000]))
    print(f'{len(train)} training chunks, {min(len(rest), 12000) + 4} validation chunks')


if __name__ == "__main__":
    main()
