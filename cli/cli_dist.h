// cli_dist.h — the command line's glue to pipeline parallelism (include/tinyvllm_dist.h): `--pp N`
// under `mpirun -np N`. Built with MPI (TV_MPI) or without, when --pp N > 1 says how to get it.
//
// Every rank runs the same command. Rank 0 is the program as without --pp (it prints, serves,
// benchmarks); ranks 1..N-1 load their layers, then run their stage inside cli_dist_engine and
// exit there. At exit rank 0 finalizes MPI, or ends the whole job when the pipeline broke.
#ifndef TV_CLI_DIST_H
#define TV_CLI_DIST_H

#include "cli_opts.h"
#include "tinyvllm.h"

// Starts MPI, plans the stages (o->pp_split or balanced by bytes), loads this rank's layers with
// mp (the other parameters as the caller set them) and runs the startup handshake. Rank 0: the
// model, or NULL + err. Other ranks exit on failure (rank 0 reports it).
tv_model *cli_dist_load(const cli_model_opts *o, tv_model_params *mp, tv_error *err);
// Rank 0: the engine over the pipeline, or NULL + err. Other ranks run their stage until rank 0's
// engine is freed, then exit.
tv_engine *cli_dist_engine(const cli_model_opts *o, tv_model *m, const tv_engine_config *ec, tv_error *err);
// The bytes each stage boundary carried and the bytes of the last stage's replies to rank 0 (sampled
// ids, logprobs, logits rows), over n_rounds rounds since load: false without a pipeline.
bool cli_dist_bytes(double *per_boundary, double *replies, double *n_rounds);

#endif
