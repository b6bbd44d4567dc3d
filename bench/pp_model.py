#!/usr/bin/env python3
"""pp_model.py — a discrete-event model of issue 18's serving bar: bench/serve_bench.mjs's closed loop
(C clients, N requests of P prompt + T output tokens, each client sends its next request when one ends)
served by one process x 2 threads and by a 2-stage pipeline with 2 rounds in flight, following
src/engine/scheduler.c's round rules (round_limits: decodes ceil(decoding / 2) per round, a prompt share
of 1/(2N) of what waits while sequences decode and 1/N when none does, at least the newest round in
flight, the share capped at max_batched_tokens / (2N)) and src/engine/engine.c's pipe_step (submit while
fewer than 2 are in flight, then collect the oldest).

Costs in ms of one thread over the whole model (a stage computes its share of the layers): W the
layers' weight stream per round, md a decoded token, mp a prompt token, Wh the output head's weights
(last stage, per round); the one process runs a round of everything at 2 threads with efficiency eff.
Defaults: measured on the 2-core Ice Lake VM (AVX-512 VNNI, no AMX) under load, tinyllama Q8_0 (bench
-t 1: tg 95 ms a token, pp256 10.5 ms a token, batch 8 -> 16 decodes). A model, not a measurement: it
has no transport latency, no serving threads, and rounds cost their tokens linearly.

  python3 bench/pp_model.py [--W 89 --md 7 --mp 10.5 --Wh 6 --eff 0.95] [--cap 128] [--no-cap]
"""
import argparse

P, T, C, N, MAXB, L = 128, 64, 16, 64, 512, 2


class Seq:
    def __init__(self):
        self.n_tokens, self.n_computed, self.n_gen, self.n_flights, self.sample_in_flight = P, 0, 0, 0, False

    def pending(self):
        return self.n_tokens - self.n_computed


def simulate(cost, pipelined, cap):
    """Returns (seconds, the last stage's busy share, rounds, sum |tokens - previous| / tokens)."""
    waiting, running, n = [], [], {'sent': 0, 'done': 0}

    def arrive():
        if n['sent'] < N:
            n['sent'] += 1
            waiting.append(Seq())

    for _ in range(C):
        arrive()

    def schedule(balance):
        n_dec = sum(1 for s in running if s.pending() == 1 or s.sample_in_flight)
        prompt = sum(s.pending() for s in running if s.pending() > 1 and not s.sample_in_flight)
        prompt += sum(s.pending() for s in waiting[:C - len(running)])
        max_dec, budget = C, MAXB
        if pipelined:
            max_dec = (n_dec + L - 1) // L
            decodable = sum(1 for s in running if s.pending() == 1 and s.n_flights == 0)
            spread = 2 * L if n_dec else L
            share = (prompt + spread - 1) // spread
            if cap:
                share = min(share, cap)
            budget = min(max(min(decodable, max_dec) + share, balance), MAXB)
        items = []
        for s in running:   # decodes, oldest first
            if budget > 0 and len(items) < max_dec and s.n_flights == 0 and s.pending() == 1:
                items.append((s, 1))
                budget -= 1
        for s in running:   # running prompts (a chunk may go while the one before is in flight)
            if budget > 0 and not s.sample_in_flight and s.pending() >= (1 if s.n_flights else 2) and \
                    all(x[0] is not s for x in items):
                items.append((s, min(s.pending(), budget)))
                budget -= items[-1][1]
        while waiting and budget > 0 and len(running) < C:   # admissions
            s = waiting.pop(0)
            running.append(s)
            items.append((s, min(s.pending(), budget)))
            budget -= items[-1][1]
        return items

    def shape(items):   # tokens, decodes, logits rows
        return (sum(k for _, k in items), sum(1 for s, k in items if s.pending() == 1),
                sum(1 for s, k in items if s.n_computed + k >= s.n_tokens))

    def submit(items):
        rec = []
        for s, k in items:
            rec.append((s, k, s.n_computed))
            s.n_flights += 1
            if s.n_computed + k >= s.n_tokens:
                s.sample_in_flight = True
            else:
                s.n_computed += k
        return rec

    def collect(rec):
        for s, k, start in rec:
            s.n_flights -= 1
            if start + k >= s.n_tokens:
                s.sample_in_flight, s.n_computed = False, start + k
                s.n_gen += 1
                s.n_tokens += 1
                if s.n_gen >= T:
                    running.remove(s)
                    n['done'] += 1
                    arrive()

    def work(tok, dec, logits, share, head):
        w = (cost['W'] + dec * cost['md'] + (tok - dec) * cost['mp']) * share
        return w + (cost['Wh'] + logits * cost['md'] * 0.06 if head else 0)

    if not pipelined:
        t = 0.0
        while n['done'] < N:
            items = schedule(0)
            tok, dec, logits = shape(items)
            t += work(tok, dec, logits, 1.0, True) / (2 * cost['eff'])
            collect(submit(items))
        return t / 1000, 1.0, 0, 0.0
    t0 = t1 = busy1 = 0.0
    fl, rounds, unbalanced, last, tokens = [], 0, 0, 0, 0
    while n['done'] < N:
        while len(fl) < L:
            items = schedule(fl[-1][2] if fl else 0)
            if not items:
                break
            tok, dec, logits = shape(items)
            rec = submit(items)
            t0 += work(tok, dec, logits, 0.5, False)             # stage 0, then the message
            b = work(tok, dec, logits, 0.5, True)                # stage 1: its layers and the head
            t1 = max(t0, t1) + b
            busy1 += b
            fl.append((rec, t1, tok))
            rounds, unbalanced, last, tokens = rounds + 1, unbalanced + abs(tok - last), tok, tokens + tok
        rec, end, _ = fl.pop(0)
        t0 = max(t0, end)
        collect(rec)
    span = max(t0, t1)
    return span / 1000, busy1 / span, rounds, unbalanced / tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    for k, v in (('W', 89.0), ('md', 7.0), ('mp', 10.5), ('Wh', 6.0), ('eff', 0.95)):
        ap.add_argument('--' + k, type=float, default=v)
    ap.add_argument('--cap', type=int, default=MAXB // (2 * L), help='prompt share cap (scheduler.c: 128)')
    ap.add_argument('--no-cap', action='store_true', help='the rules before the cap')
    a = ap.parse_args()
    cost = {k: getattr(a, k) for k in ('W', 'md', 'mp', 'Wh', 'eff')}
    one, *_ = simulate(cost, False, None)
    pp, busy, rounds, unb = simulate(cost, True, None if a.no_cap else a.cap)
    print(f'one process x 2 threads {one:.1f} s; 2 stages {pp:.1f} s = {one / pp:.3f}x; last stage busy {busy:.0%}, '
          f'{rounds} rounds, consecutive rounds differ by {unb:.0%} of their tokens')


if __name__ == '__main__':
    main()
