#!/usr/bin/env python3
"""pp_model.py — a discrete-event model of issue 18's serving bar: bench/serve_bench.mjs's closed loop
(C clients, N requests of P prompt + T output tokens, each client sends its next request when one ends)
served by one process x 2 threads and by a 2-stage pipeline with L rounds in flight, following
src/engine/scheduler.c's round rules (round_limits: decodes ceil(decoding / L) per round, a prompt share
of 1/(2L) of what waits while sequences decode and 1/L when none does, at least the newest round in
flight, the share capped at max_batched_tokens / (2L)) and src/engine/engine.c's pipe_step (submit while
fewer than L are in flight, then collect the oldest). A model, not a measurement: it has no transport
latency and no serving threads.

Costs in ms over the whole model (a stage computes its share of the layers): W the layers' weight
stream of one round at one thread, md a decode row, mp a prompt token, Wh the output head's weights
and mh a logits row in it (the last stage, per round). A round of R = rows' cost costs
max(W, (1 - ov) W + R): ov 0 is ADDITIVE (W + R: the stream, then the rows), ov 1 OVERLAPPED (max(W, R):
the rows compute while the weights stream), between: the share ov of the stream hides under the
rows' compute, and a round is never faster than its stream. The one process runs a round at 2
threads: the stream bw2 times faster (2: each core has its own bandwidth; 1: the machine's), the rows
2 x eff times faster. cw multiplies a stage's stream (two ranks streaming at once: 2 / (how many times
one rank's bandwidth the two get together)).

Machines (--machine; each cost can be overridden):
  icelake  the 2-core Ice Lake VM (AVX-512 VNNI, no AMX), tinyllama Q8_0, `bench -t 1` under load: tg 95
           ms a token, pp256 10.5 ms a token, batch 8 -> 16 decodes; additive, 2 threads = 2 x 0.95
           (the model of 2db5e77: 0.839x with main's rules, measured 0.799x)
  zen4     the 2-vCPU AMD EPYC Genoa VM (AVX-512 VNNI, no AMX), tinyllama Q8_0: engine steps timed in
           CPU time at 1 and 2 threads (ZEN4 below: the fit and the measurements behind it)

Rules (--rule; alternatives to round_limits for the pipelined server):
  main     scheduler.c's (with --share-div, --cap, --lanes, --split to vary it)
  split    decode rounds and prompt rounds alternate: every decodable sequence in a round without prompt
           tokens, then a round of prompt chunks (the share of what waits, at least as many tokens as
           the decode round in flight), then decodes again
  fill     as split, but the decode round also takes prompt tokens up to --fill tokens in all
  hybrid   split while prompt tokens wait, main's rule while none does

  python3 bench/pp_model.py [--machine zen4|icelake] [--W .. --md .. --mp .. --Wh .. --mh .. --eff ..
                            --bw2 .. --ov .. --cw ..] [--rule main|split|fill|hybrid] [--cap 128 | --no-cap]
                            [--share-div 2] [--lanes 2] [--split 0.5] [--fill 32]
  python3 bench/pp_model.py --table      every alternative on both machines' costs (zen4's also with
                                         bw2 2, ov 0 and ov 1)
"""
import argparse

P, T, C, N, MAXB = 128, 64, 16, 64, 512

# The 2-core Ice Lake VM's costs (2db5e77), one thread, ms over the whole model; additive.
ICELAKE = dict(W=89.0, Wh=6.0, md=7.0, mp=10.5, mh=0.42, eff=0.95, bw2=1.9, ov=0.0, cw=1.0)
# The 2-vCPU EPYC Genoa VM (2026-12-07, under load 4-10 from other jobs, so in CPU time): one engine
# step of d decodes + a q-token prompt at one thread, 14 shapes (d 1-32, q 16-512, mixed), 7 steps
# each, medians of 4-5 runs. Rounds of 8+ rows: 47.6 ms + 6.66 per decode row + 6.16 per prompt token
# (11 shapes, residuals <= 1.9%); one decode row alone 56.8 ms, the whole stream (the head 6.3% of it,
# and of a decode row); so 47.6 / 56.8: 84% of the stream does not hide under the rows (ov 0.16).
# Two threads: the same CPU time per prompt token (6.23 ms: eff ~0.97 after the pool's joins); the
# read probe 57.8 GB/s at 2 threads against 30-32 at 1 (bw2 1.87; its only run in which both threads
# got a core), so two ranks streaming at once each get 2 / 1.87 of their time (cw 1.07).
ZEN4 = dict(W=53.2, Wh=3.6, md=6.27, mp=6.16, mh=0.39, eff=0.97, bw2=1.87, ov=0.16, cw=1.07)
MACHINES = {'icelake': ICELAKE, 'zen4': ZEN4}


class Seq:
    def __init__(self):
        self.n_tokens, self.n_computed, self.n_gen, self.n_flights, self.sample_in_flight = P, 0, 0, 0, False

    def pending(self):
        return self.n_tokens - self.n_computed


def combine(w, r, ov):
    """A round's cost: its weight stream w and its rows' compute r; the share ov of the stream runs
    under the compute (ov 0: w + r, additive; ov 1: max(w, r), overlapped), never faster than w."""
    return max(w, (1 - ov) * w + r)


def simulate(cost, pipelined, rule='main', cap='auto', lanes=2, share_div=2, split=0.5, fill=32):
    """Returns (seconds, the last stage's busy share, rounds, sum |tokens - previous| / tokens). cap: the
    prompt share's cap, 'auto' scheduler.c's (max_batched_tokens / (2L), rounded up), None none."""
    waiting, running, n = [], [], {'sent': 0, 'done': 0}
    L = lanes
    if cap == 'auto':
        cap = (MAXB + 2 * L - 1) // (2 * L)

    def arrive():
        if n['sent'] < N:
            n['sent'] += 1
            waiting.append(Seq())

    for _ in range(C):
        arrive()

    def schedule(balance, after_decodes=False):
        n_dec = sum(1 for s in running if s.pending() == 1 or s.sample_in_flight)
        decodable = sum(1 for s in running if s.pending() == 1 and s.n_flights == 0)
        prompt = sum(s.pending() for s in running if s.pending() > 1 and not s.sample_in_flight)
        prompt += sum(s.pending() for s in waiting[:C - len(running)])
        max_dec, budget, max_prompt = C, MAXB, MAXB
        if pipelined:
            spread = share_div * L if n_dec else L
            share = (prompt + spread - 1) // spread
            if cap:
                share = min(share, cap)
            if rule == 'main' or (rule == 'hybrid' and prompt == 0):
                max_dec = (n_dec + L - 1) // L
                budget = min(max(min(decodable, max_dec) + share, balance), MAXB)
            else:   # split / fill: decode rounds and prompt rounds alternate (fill: some prompt rides along)
                is_decode_round = decodable > 0 and not after_decodes
                max_dec = n_dec if is_decode_round else 0
                if is_decode_round:
                    max_prompt = max(fill - decodable, 0) if rule == 'fill' else 0
                else:
                    max_prompt = max(share, balance, 1)
                budget = min((decodable if is_decode_round else 0) + max_prompt, MAXB)
        items = []
        for s in running:   # decodes, oldest first
            if budget > 0 and len(items) < max_dec and s.n_flights == 0 and s.pending() == 1:
                items.append((s, 1))
                budget -= 1
        budget = min(budget, max_prompt)
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

    def work(tok, dec, logits, share, head, w_scale=1.0, r_scale=1.0, cw=1.0):
        w = cost['W'] * share * w_scale * cw + (cost['Wh'] * w_scale if head else 0)
        r = (dec * cost['md'] + (tok - dec) * cost['mp']) * share + (logits * cost['mh'] if head else 0)
        r *= r_scale
        return combine(w, r, cost['ov'])

    if not pipelined:
        t = 0.0
        while n['done'] < N:
            items = schedule(0)
            tok, dec, logits = shape(items)
            t += work(tok, dec, logits, 1.0, True, 1 / cost['bw2'], 1 / (2 * cost['eff']))
            collect(submit(items))
        return t / 1000, 1.0, 0, 0.0
    t0 = t1 = busy1 = 0.0
    fl, rounds, unbalanced, last, tokens = [], 0, 0, 0, 0
    while n['done'] < N:
        while len(fl) < L:
            items = schedule(fl[-1][2] if fl else 0, fl[-1][3] if fl else False)
            if not items:
                break
            tok, dec, logits = shape(items)
            rec = submit(items)
            t0 += work(tok, dec, logits, split, False, cw=cost['cw'])      # stage 0, then the message
            b = work(tok, dec, logits, 1 - split, True, cw=cost['cw'])     # stage 1: its layers and the head
            t1 = max(t0, t1) + b
            busy1 += b
            fl.append((rec, t1, tok, dec > 0))
            rounds, unbalanced, last, tokens = rounds + 1, unbalanced + abs(tok - last), tok, tokens + tok
        rec, end, *_ = fl.pop(0)
        t0 = max(t0, end)
        collect(rec)
    span = max(t0, t1)
    return span / 1000, busy1 / span, rounds, unbalanced / tokens


def ratio(cost, **kw):
    one, *_ = simulate(cost, False)
    pp, busy, rounds, unb = simulate(cost, True, **kw)
    return one, pp, busy, rounds, unb


ALTERNATIVES = [
    ('main (share 1/(2L), cap 128)', {}),
    ('main, no cap', dict(cap=None)),
    ('main, cap 64', dict(cap=64)),
    ('main, cap 256', dict(cap=256)),
    ('main, share 1/L', dict(share_div=1)),
    ('main, share 1/(4L)', dict(share_div=4)),
    ('main, 3 rounds in flight', dict(lanes=3)),
    ('main, split 12/10 layers', dict(split=12 / 22)),
    ('main, split 10/12 layers', dict(split=10 / 22)),
    ('split: decodes / prompts', dict(rule='split')),
    ('split, share 1/L', dict(rule='split', share_div=1)),
    ('hybrid: split while prompts wait', dict(rule='hybrid')),
    ('fill 24: decodes + prompt to 24', dict(rule='fill', fill=24)),
    ('fill 32', dict(rule='fill', fill=32)),
    ('fill 48', dict(rule='fill', fill=48)),
]


def table():
    cols = [('icelake', ICELAKE), ('zen4', ZEN4), ('zen4 bw2=2', dict(ZEN4, bw2=2.0, cw=1.0)),
            ('zen4 ov=0', dict(ZEN4, ov=0.0)), ('zen4 ov=1', dict(ZEN4, ov=1.0))]
    print(f'{"rule":34s}' + ''.join(f'{name:>16s}' for name, _ in cols))
    for label, kw in ALTERNATIVES:
        cells = []
        for _, c in cols:
            one, pp, busy, *_ = ratio(c, **kw)
            cells.append(f'{one / pp:8.3f}x ({busy:.0%})')
        print(f'{label:34s}' + ''.join(f'{x:>16s}' for x in cells))
    print('(pipelined / one process output tok/s; in brackets the last stage busy)')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--machine', choices=MACHINES, default='zen4')
    for k in ICELAKE:
        ap.add_argument('--' + k, type=float, default=None)
    ap.add_argument('--rule', choices=('main', 'split', 'fill', 'hybrid'), default='main')
    ap.add_argument('--cap', type=int, default=None, help="prompt share cap (default scheduler.c's, 128 at 2)")
    ap.add_argument('--no-cap', action='store_true', help='the rules before the cap')
    ap.add_argument('--share-div', type=int, default=2, help='prompt share 1/(k L) while sequences decode')
    ap.add_argument('--lanes', type=int, default=2, help='rounds in flight (2 stages)')
    ap.add_argument('--split', type=float, default=0.5, help="stage 0's share of the layers")
    ap.add_argument('--fill', type=int, default=32, help='--rule fill: tokens of a decode round')
    ap.add_argument('--table', action='store_true', help='every alternative on both machines')
    a = ap.parse_args()
    if a.table:
        table()
        return
    cost = dict(MACHINES[a.machine])
    cost.update({k: getattr(a, k) for k in ICELAKE if getattr(a, k) is not None})
    cap = None if a.no_cap else a.cap if a.cap else 'auto'
    one, pp, busy, rounds, unb = ratio(cost, rule=a.rule, cap=cap, lanes=a.lanes,
                                       share_div=a.share_div, split=a.split, fill=a.fill)
    print(f'one process x 2 threads {one:.1f} s; 2 stages {pp:.1f} s = {one / pp:.3f}x; last stage busy {busy:.0%}, '
          f'{rounds} rounds, consecutive rounds differ by {unb:.0%} of their tokens')


if __name__ == '__main__':
    main()
