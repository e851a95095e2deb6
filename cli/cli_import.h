/*
 * cli_import: `easgate admin devices import|export`, `users import` and
 * `audit export` (docs/core.md, "Import and export"): files in CSV or JSON
 * lines, moved through the admin API in batches.
 *
 * Import reads the file three times and holds one batch at a time, so a
 * file of any size needs little memory: first it checks every row itself
 * (columns, values, UTF-8, duplicate DeviceIds: FILE:LINE errors, nothing
 * sent), then the server checks every batch in a dry run (`validate`: the
 * errors only; unknown users: FILE:LINE again, nothing stored), then the
 * batches are stored, each in one transaction. One batch is in flight at a
 * time, and the next is read while the core works on it. A batch the
 * server refuses stops the import; the report says which lines landed
 * before it. Importing the same file again changes
 * nothing. --dry-run stops after the second pass and prints what would
 * change.
 *
 * Export walks the API's keyset pages and writes each row as it arrives.
 */
#ifndef EG_CLI_IMPORT_H
#define EG_CLI_IMPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* The admin client's connection (cli_admin.c). */
struct cli_admin_client {
    const char *url, *token, *cacert;
};

/*
 * One API call: the answer's JSON (any status) into *out, the status into
 * *status. 0, or 1 when no answer came (printed).
 */
int cli_admin_request(const struct cli_admin_client *cl, const char *method, const char *path,
                      json_t *body, json_t **out, long *status);
/* The same with a body already in JSON text: the len bytes at text (body NULL). */
int cli_admin_request_text(const struct cli_admin_client *cl, const char *method, const char *path,
                           json_t *body, const char *text, size_t len, json_t **out, long *status);

struct cli_import_opts {
    const char *format; /* "csv", "jsonl", or NULL: from the file's name */
    bool dry_run, create_users;
    long batch; /* rows per request; 0 = 500 */
};

/* what: "devices" or "users". Exit status: 0, 1 (errors printed), 2 usage. */
int cli_import(const struct cli_admin_client *cl, const char *what, const char *file,
               const struct cli_import_opts *o);

/*
 * The first pass alone, without a server: every record of file read and
 * checked as cli_import() checks it (columns, values, UTF-8, duplicates),
 * errors printed as FILE:LINE. Returns the good rows, or -1 when the file
 * or its header cannot be read or --format is unknown; *errors (if not
 * NULL) gets the count of errors printed and not.
 */
long cli_import_check(const char *what, const char *file, const char *format, long *errors);

/* what: "devices" (query: the list's filters, "" or "user=...&state=...") or
 * "audit" (query: "target=..."). Rows to out. Exit status as above. */
int cli_export(const struct cli_admin_client *cl, const char *what, const char *query,
               const char *format, FILE *out);

#endif
