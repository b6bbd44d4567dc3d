// bench_load.c — `tinyvllm bench --load` (bench_load.h): what tv_bench_load measured, as a table or JSON.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_load.h"
#include "cli_util.h"
#include "tinyvllm.h"
#include "tinyvllm_tools.h"

// Removes the scratch folder and the files in it (the cache test writes only plain files there).
static void remove_scratch(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4400];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                (void)unlink(path);
            }
        closedir(d);
    }
    (void)rmdir(dir);
}

static void print_text(const char *path, const tv_load_bench_result *r) {
    const double gb = 1e9;
    printf("load bench: %s (%d file%s, %.2f GB; weights %.2f GB), %d threads, best of the repetitions\n", path, r->n_files,
           r->n_files == 1 ? "" : "s", (double)r->file_bytes / gb, (double)r->weight_bytes / gb, r->n_threads);
    printf("  page cache read (warm)        %7.2f GB/s\n", r->read_warm_gbs);
    printf("  load + weights read (warm)    %7.2f GB/s  %5.1f%% of the page cache  (%.0f ms; bar >= 80%%)\n", r->load_warm_gbs,
           r->read_warm_gbs > 0 ? 100 * r->load_warm_gbs / r->read_warm_gbs : 0, r->load_warm_ms);
    if (r->has_cold) {
        printf("  disk read (cold)              %7.2f GB/s\n", r->read_cold_gbs);
        printf("  load + weights read (cold)    %7.2f GB/s  %5.1f%% of the cold read\n", r->load_cold_gbs,
               r->read_cold_gbs > 0 ? 100 * r->load_cold_gbs / r->read_cold_gbs : 0);
    } else {
        printf("  cold                          not measured: %s\n", r->cold_note);
    }
    char label[40];
    snprintf(label, sizeof label, "convert to %s at load", r->convert_type);
    if (r->convert_src_bytes)
        printf("  %-29s %7.2f GB/s of input  (%.2f GB in %.0f ms; bar >= 1 GB/s of F16 on 2 threads)\n", label, r->convert_gbs,
               (double)r->convert_src_bytes / gb, r->convert_ms);
    else
        printf("  convert at load               not measured: no F32/F16/BF16 weights\n");
    if (r->cache_cold_ms > 0 && r->cache_hit_ms > 0)
        printf("  prepared-weight cache         cold start %.0f ms (prepare + write), next start %.0f ms = %.2fx of the cold one "
               "(bar <= 0.33x)\n", r->cache_cold_ms, r->cache_hit_ms, r->cache_hit_ms / r->cache_cold_ms);
    else
        printf("  prepared-weight cache         not measured: %s\n", r->cache_note);
}

static int print_json(const char *path, const tv_load_bench_result *r) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return 1;
    cJSON_AddStringToObject(j, "model", path);
    cJSON_AddNumberToObject(j, "threads", r->n_threads);
    cJSON_AddNumberToObject(j, "files", r->n_files);
    cJSON_AddNumberToObject(j, "file_bytes", (double)r->file_bytes);
    cJSON_AddNumberToObject(j, "weight_bytes", (double)r->weight_bytes);
    cJSON_AddNumberToObject(j, "read_warm_gbs", r->read_warm_gbs);
    cJSON_AddNumberToObject(j, "load_warm_gbs", r->load_warm_gbs);
    cJSON_AddNumberToObject(j, "load_warm_ms", r->load_warm_ms);
    cJSON_AddNumberToObject(j, "load_warm_fraction", r->read_warm_gbs > 0 ? r->load_warm_gbs / r->read_warm_gbs : 0);
    cJSON_AddItemToObject(j, "read_cold_gbs", r->has_cold ? cJSON_CreateNumber(r->read_cold_gbs) : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "load_cold_gbs", r->has_cold ? cJSON_CreateNumber(r->load_cold_gbs) : cJSON_CreateNull());
    if (!r->has_cold) cJSON_AddStringToObject(j, "cold_note", r->cold_note);
    cJSON_AddStringToObject(j, "convert_type", r->convert_type);
    cJSON_AddNumberToObject(j, "convert_src_bytes", (double)r->convert_src_bytes);
    cJSON_AddItemToObject(j, "convert_gbs", r->convert_src_bytes ? cJSON_CreateNumber(r->convert_gbs) : cJSON_CreateNull());
    const bool cache = r->cache_cold_ms > 0 && r->cache_hit_ms > 0;
    cJSON_AddItemToObject(j, "cache_cold_ms", cache ? cJSON_CreateNumber(r->cache_cold_ms) : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "cache_hit_ms", cache ? cJSON_CreateNumber(r->cache_hit_ms) : cJSON_CreateNull());
    if (!cache) cJSON_AddStringToObject(j, "cache_note", r->cache_note);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return 1;
    puts(s);
    free(s);
    return 0;
}

int cli_bench_load(const cli_model_opts *mo, long reps, bool json) {
    char scratch[4200];
    const char *parent = mo->cache_dir ? mo->cache_dir : getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/tinyvllm-bench-load.XXXXXX", parent && *parent ? parent : "/tmp");
    const bool have_scratch = !mo->no_cache && mkdtemp(scratch) != NULL;
    const char *cpu = mo->cpu && *mo->cpu ? mo->cpu : getenv("TINYVLLM_CPU");
    tv_load_bench_params p = {.n_threads = (int)mo->threads, .cpu_path = cpu && *cpu ? cpu : NULL, .convert_type = mo->quantize,
                              .cache_dir = have_scratch ? scratch : NULL, .cache_quantize = mo->quantize, .reps = (int)reps};
    tv_load_bench_result r;
    tv_error err = {0};
    cli_progress bar;
    cli_progress_begin(&bar, mo->quiet);
    cli_progress_show(&bar, "bench --load: measuring %s", mo->model_path);
    tv_status st = tv_bench_load(mo->model_path, &p, &r, &err);
    cli_progress_end(&bar);
    if (have_scratch) remove_scratch(scratch);
    if (st) {
        fprintf(stderr, "tinyvllm bench: %s\n", err.msg);
        return 1;
    }
    if (!have_scratch) snprintf(r.cache_note, sizeof r.cache_note, "%s", mo->no_cache ? "--no-cache" : "no scratch folder");
    if (json) return print_json(mo->model_path, &r);
    print_text(mo->model_path, &r);
    return 0;
}
