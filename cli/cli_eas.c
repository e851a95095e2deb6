/*
 * cli_eas: `easgate eas query [-H 'Name: value']... 'QUERY'`.
 *
 * Operators paste a captured request URL (from an IIS log, a proxy log or
 * a phone's debug output) and get back what easgate reads from it: the same
 * code the proxy runs, printed as one JSON object. Headers can be added
 * with -H, as with curl, to see how they merge with the query.
 */
#include "cli/cli.h"
#include "eas/easq.h"

#include <stdio.h>
#include <string.h>

#define CLI_EAS_MAX_HEADERS 32

/* JSON string with the escapes RFC 8259 requires; bytes >= 0x80 pass as is
 * (the parser only lets UTF-8-ish text and no controls into the fields). */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void field(const char *name, const char *value, bool *first)
{
    printf("%s\n  \"%s\": ", *first ? "" : ",", name);
    *first = false;
    json_str(value);
}

static const char *user_src_name(enum easq_user_src s)
{
    switch (s) {
    case EASQ_USER_BASIC:
        return "basic";
    case EASQ_USER_BEARER:
        return "bearer";
    case EASQ_USER_QUERY:
        return "query";
    case EASQ_USER_NTLM:
        return "ntlm";
    case EASQ_USER_CONN:
        return "connection";
    default:
        return "none";
    }
}

static const char *user_form_name(enum easq_user_form f)
{
    switch (f) {
    case EASQ_FORM_DOWNLEVEL:
        return "domain\\user";
    case EASQ_FORM_UPN:
        return "upn";
    default:
        return "plain";
    }
}

static void print_ident(const struct easq_ident *id)
{
    bool first = true;
    char buf[64];
    char key[EASQ_DEVICEID_MAX + 1];

    putchar('{');
    field("form", id->form == EASQ_QUERY_BASE64 ? "base64" : "plain", &first);
    field("command", easq_cmd_name(id->cmd), &first);
    printf(",\n  \"command_code\": %d", easq_cmd_code(id->cmd));
    if (id->version) {
        snprintf(buf, sizeof(buf), "%d.%d", id->version / 10, id->version % 10);
        field("protocol_version", buf, &first);
    } else {
        printf(",\n  \"protocol_version\": null");
    }
    field("user", id->user, &first);
    field("domain", id->domain, &first);
    field("user_source", user_src_name(id->user_src), &first);
    field("credential", easq_cred_name(id->cred), &first);
    field("user_form", user_form_name(id->user_form), &first);
    field("query_user", id->query_user, &first);
    field("device_id", id->device_id, &first);
    if (easq_deviceid_norm(id->device_id, strlen(id->device_id), key, sizeof(key)) >= 0)
        field("device_key", key, &first);
    field("device_type", id->device_type, &first);
    if (id->has_policy_key)
        printf(",\n  \"policy_key\": %u", (unsigned)id->policy_key);
    else
        printf(",\n  \"policy_key\": null");
    if (id->has_locale) {
        snprintf(buf, sizeof(buf), "0x%04x", id->locale);
        field("locale", buf, &first);
    } else {
        printf(",\n  \"locale\": null");
    }
    field("user_agent", id->user_agent, &first);
    if (id->user_agent_truncated)
        printf(",\n  \"user_agent_truncated\": true");

    printf(",\n  \"parameters\": {");
    bool pf = true;
    const struct {
        const char *name, *value;
    } params[] = {{"AttachmentName", id->attachment_name},
                  {"CollectionId", id->collection_id},
                  {"ItemId", id->item_id},
                  {"LongId", id->long_id},
                  {"Occurrence", id->occurrence}};
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        if (!params[i].value[0])
            continue;
        printf("%s\n    ", pf ? "" : ",");
        json_str(params[i].name);
        printf(": ");
        json_str(params[i].value);
        pf = false;
    }
    if (id->has_options) {
        printf("%s\n    \"Options\": %u", pf ? "" : ",", id->options);
        pf = false;
    }
    printf("%s\n    \"SaveInSent\": %s", pf ? "" : ",", id->save_in_sent ? "true" : "false");
    printf(",\n    \"AcceptMultiPart\": %s\n  }", id->accept_multipart ? "true" : "false");
    printf("\n}\n");
}

static int query(int argc, char **argv)
{
    const char *hdrs[CLI_EAS_MAX_HEADERS];
    size_t nh = 0;
    const char *target = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-H") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "easgate eas query: -H needs a 'Name: value' argument\n");
                return 2;
            }
            if (nh == CLI_EAS_MAX_HEADERS) {
                fprintf(stderr, "easgate eas query: at most %d -H headers\n", CLI_EAS_MAX_HEADERS);
                return 2;
            }
            hdrs[nh++] = argv[++i];
        } else if (!target) {
            target = argv[i];
        } else {
            fprintf(stderr, "easgate eas query: one QUERY only (quote it: '...&...')\n");
            return 2;
        }
    }
    if (!target) {
        fprintf(stderr, "easgate eas query: give the QUERY\n");
        return CLI_USAGE;
    }

    struct easq_ident id;
    easq_init(&id);
    int rc = easq_parse_target(&id, target, strlen(target));
    if (rc) {
        fprintf(stderr, "easgate eas query: %s (in %s)\n", easq_strerror(rc),
                id.err_field ? id.err_field : "query");
        return 1;
    }
    for (size_t i = 0; i < nh; i++) {
        const char *colon = strchr(hdrs[i], ':');
        if (!colon || colon == hdrs[i]) {
            fprintf(stderr, "easgate eas query: -H '%s': expected 'Name: value'\n", hdrs[i]);
            return 2;
        }
        size_t nlen = (size_t)(colon - hdrs[i]);
        rc = easq_parse_header(&id, hdrs[i], nlen, colon + 1, strlen(colon + 1));
        if (rc) {
            fprintf(stderr, "easgate eas query: header %.*s: %s\n", (int)nlen, hdrs[i],
                    easq_strerror(rc));
            return 1;
        }
    }
    rc = easq_finish(&id);
    if (rc) {
        fprintf(stderr, "easgate eas query: %s (in %s)\n", easq_strerror(rc),
                id.err_field ? id.err_field : "query");
        return 1;
    }
    print_ident(&id);
    return 0;
}

static const struct cli_cmd eas_query = {
    "query", "decode a request's identity (query and headers) to JSON",
    "usage: easgate eas query [-H 'Name: value']... 'QUERY'\n"
    "\n"
    "QUERY is a bare query, '?query', a path '/Microsoft-Server-ActiveSync?...'\n"
    "or a whole URL. Prints the request identity as JSON; exit 1 if malformed.\n"
    "\n"
    "example:\n"
    "  easgate eas query '/Microsoft-Server-ActiveSync?jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l'\n"
    "  easgate eas query -H 'MS-ASProtocolVersion: 14.1' \\\n"
    "      'Cmd=Sync&User=alice&DeviceId=ApplF17X&DeviceType=iPhone'\n",
    query, NULL};

static const struct cli_cmd *const eas_cmds[] = {&eas_query, NULL};

const struct cli_cmd cli_eas_cmd = {
    "eas", "decode ActiveSync request identity: eas query 'QUERY'",
    "usage: easgate eas COMMAND [ARGS]\n"
    "  the ActiveSync protocol library (eas/) from the command line\n",
    NULL, eas_cmds};
