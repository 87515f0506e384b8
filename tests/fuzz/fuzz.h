/*
 * fuzz.h - shared by the libFuzzer targets under tests/fuzz/: the entry
 * point every target defines, and FUZZ_CHECK, the invariant check that
 * works in every build (assert() is compiled out under NDEBUG, which the
 * default RelWithDebInfo build defines).
 *
 * A target is one C file defining LLVMFuzzerTestOneInput.  It is linked
 * either with libFuzzer (-DBLOBD_FUZZ=ON, clang) or with replay_main.c,
 * which runs it over the checked-in corpus and regression files (the
 * fuzz_replay_<target> tests of the default suite).
 *
 * Rules for targets:
 *  F1. Deterministic: the same input does the same thing (no clock, no
 *      random numbers in what is checked), so a crash file reproduces.
 *  F2. Everything a run allocates or creates is released by the end of
 *      the run (libFuzzer's leak check runs between inputs; temp dirs are
 *      removed every run).
 *  F3. A broken invariant aborts with a message naming it; nothing else
 *      aborts.
 */
#ifndef BLOBD_FUZZ_H
#define BLOBD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__,         \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* A NUL-terminated malloc'ed copy of data[0..size) (NULL only on ENOMEM,
 * which a target treats as "nothing to do"). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < size; i++)
        s[i] = (char)data[i];
    s[size] = '\0';
    return s;
}

#endif
