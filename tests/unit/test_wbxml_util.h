/*
 * Helpers shared by the WBXML tests: read a file, find the source tree, and
 * keep a list of named WBXML inputs, filled from the XML corpus in
 * tests/data/eas (each document encoded by the project) and from whatever a
 * test adds. Include after cmocka.h.
 */
#ifndef TEST_WBXML_UTIL_H
#define TEST_WBXML_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas/wbxml.h"

/* The whole file, NUL-terminated; *len excludes the NUL. */
static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0 && n < (1 << 24));
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static inline const char *srcdir(void)
{
    const char *s = getenv("EG_SOURCE_DIR");
    return s ? s : EG_SOURCE_DIR;
}

#define MAX_INPUTS 200
struct input {
    char name[96];
    uint8_t *buf;
    size_t len;
};
static struct input inputs[MAX_INPUTS] __attribute__((unused));
static size_t n_inputs __attribute__((unused));

static inline void add_input(const char *name, const uint8_t *buf, size_t len)
{
    assert_true(n_inputs < MAX_INPUTS);
    struct input *in = &inputs[n_inputs++];
    snprintf(in->name, sizeof(in->name), "%s", name);
    in->buf = malloc(len ? len : 1);
    assert_non_null(in->buf);
    memcpy(in->buf, buf, len);
    in->len = len;
}

/* Encode an XML document and add it; a document that does not encode fails
 * the test with its offset. */
static inline void add_xml(const char *name, const char *xml)
{
    uint8_t *wb;
    size_t wlen;
    uint64_t off = 0;
    const char *why = NULL;
    if (wbxml_from_xml(xml, strlen(xml), &wb, &wlen, &off, &why) != 0)
        fail_msg("%s: XML offset %llu: %s", name, (unsigned long long)off, why);
    add_input(name, wb, wlen);
    free(wb);
}

/* Every .xml file in tests/data/eas, encoded, named by its file name. */
static inline void add_corpus(void)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/data/eas", srcdir());
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name), len;
        if (nl < 5 || strcmp(e->d_name + nl - 4, ".xml") != 0)
            continue;
        char path[1400];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *xml = slurp(path, &len);
        add_xml(e->d_name, xml);
        free(xml);
    }
    closedir(d);
}

static inline void free_all_inputs(void)
{
    for (size_t i = 0; i < n_inputs; i++)
        free(inputs[i].buf);
    n_inputs = 0;
}

#endif
