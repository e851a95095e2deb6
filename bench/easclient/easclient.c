/*
 * easclient: a scripted ActiveSync client for the tests, on the project's
 * WBXML library (eas/). It sends one command -- its body written as XML
 * in MS-ASWBXML namespaces, encoded to WBXML here -- and prints the answer:
 *
 *   HTTP <status>
 *   <decoded XML of a WBXML answer, or the body as text>
 *
 * and it knows two scripts: `provision`, the two-step policy download and
 * acknowledgement every phone runs, which prints "policy_key=<final key>"
 * (exit 0) or what went wrong (exit 1); and `session FILE`, a whole phone
 * conversation from a script (ec_session.c), printed as a transcript that
 * two runs can be compared by.
 *
 * Plain HTTP or TLS (https://, --cafile to verify), Basic auth with
 * --password; the URL may carry the path the server lives under
 * (https://host/SOGo -> /SOGo/Microsoft-Server-ActiveSync).
 *
 *   easclient --url http[s]://HOST:PORT[/PREFIX] --user alice --device DEV1 \
 *             [--password P] [--cafile F] [--sni NAME] [--type iPhone] [--version 14.1]
 *             [--policy-key N] [--base64] [--header "Name: value"]... [--raw FILE] CMD [XMLFILE|-]
 *   easclient ... provision [--devinfo MODEL] [--ack-key N] [--ack-status N]
 *   easclient ... [--report FILE] session SCRIPT|-
 */
#include "easclient.h"

#include "eas/easq.h"
#include "eas/wbxml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define MAX_HEADERS 8
#define MAX_RESPONSE (4u << 20)

struct opts {
    struct ec_target t;
    const char *user, *device, *type, *version;
    const char *password;
    const char *policy_key;
    const char *headers[MAX_HEADERS];
    int n_headers;
    const char *raw; /* a file sent as the body, as is */
    int base64;
    const char *devinfo;
    const char *ack_key;
    int ack_status;
    int show_headers;
    const char *report;
};

static void usage(void)
{
    fputs("usage: easclient --url http[s]://HOST:PORT[/PREFIX] --user U --device ID [--type T] "
          "[--version V]\n"
          "       [--password P] [--cafile FILE] [--sni NAME] [--timeout S] [--show-headers]\n"
          "       [--policy-key N] [--base64] [--header 'Name: value']... [--raw FILE]\n"
          "       CMD [XMLFILE|-]     one command, body from XML (MS-ASWBXML namespaces)\n"
          "       provision [--devinfo MODEL] [--ack-key N] [--ack-status N]\n"
          "       [--report FILE] session SCRIPT|-   a whole session, printed as a transcript\n",
          stderr);
}

int ec_target_path(const struct ec_target *t, char *out, size_t n, const char *cmd,
                   const char *user, const char *device, const char *type)
{
    int k =
        snprintf(out, n, "%s/Microsoft-Server-ActiveSync?Cmd=%s&User=%s&DeviceId=%s&DeviceType=%s",
                 t->prefix, cmd, user, device, type);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

int ec_basic_auth(char *out, size_t n, const char *user, const char *password)
{
    char cred[512];
    int cl = snprintf(cred, sizeof(cred), "%s:%s", user, password);
    size_t need = sizeof("Authorization: Basic \r\n") + ((size_t)cl + 2) / 3 * 4;
    if (cl < 0 || (size_t)cl >= sizeof(cred) || need > n)
        return -1;
    int k = snprintf(out, n, "Authorization: Basic ");
    k += EVP_EncodeBlock((unsigned char *)out + k, (const unsigned char *)cred, cl);
    snprintf(out + k, n - (size_t)k, "\r\n");
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "easclient: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = cap < MAX_RESPONSE ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (f != stdin)
        fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

/* POST the body on a connection of its own (Connection: close); read the
 * whole answer. */
static int http_post(const struct opts *o, const char *cmd, const uint8_t *body, size_t blen,
                     const char *policy_key, struct ec_resp *r)
{
    memset(r, 0, sizeof(*r));
    char target[1024];
    if (o->base64) {
        /* MS-ASHTTP 2.2.1.1.1.1: the query as base64, built by easq. */
        struct easq_ident id;
        easq_init(&id);
        char q[600];
        char t[512];
        snprintf(t, sizeof(t),
                 "/Microsoft-Server-ActiveSync?Cmd=%s&User=%s&DeviceId=%s&DeviceType=%s", cmd,
                 o->user, o->device, o->type);
        if (easq_parse_target(&id, t, strlen(t)) < 0 || easq_finish(&id) < 0) {
            fprintf(stderr, "easclient: cannot build the request for %s\n", cmd);
            return -1;
        }
        int v = 0, a = 0, b = 0;
        if (sscanf(o->version, "%d.%d", &a, &b) == 2)
            v = a * 10 + b;
        id.version = v;
        if (policy_key) {
            id.has_policy_key = true;
            id.policy_key = (uint32_t)strtoul(policy_key, NULL, 10);
        }
        if (easq_encode_b64(&id, q, sizeof(q)) < 0) {
            fprintf(stderr, "easclient: cannot encode the base64 query\n");
            return -1;
        }
        snprintf(target, sizeof(target), "%s/Microsoft-Server-ActiveSync?%s", o->t.prefix, q);
    } else if (ec_target_path(&o->t, target, sizeof(target), cmd, o->user, o->device, o->type) <
               0) {
        return -1;
    }
    char auth[512] = "";
    if (o->password && ec_basic_auth(auth, sizeof(auth), o->user, o->password) < 0)
        return -1;
    char head[4096];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: easclient/1.0\r\n%s"
                     "MS-ASProtocolVersion: %s\r\nContent-Type: application/vnd.ms-sync.wbxml\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n",
                     target, o->t.host, auth, o->version, blen);
    if (policy_key && !o->base64)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "X-MS-PolicyKey: %s\r\n", policy_key);
    for (int i = 0; i < o->n_headers && (size_t)n < sizeof(head); i++)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "%s\r\n", o->headers[i]);
    if ((size_t)n + 3 > sizeof(head))
        return -1;
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");

    struct ec_net net;
    if (ec_net_init(&net, &o->t, false, NULL) < 0)
        return -1;
    int rc = ec_net_roundtrip(&net, head, (size_t)n, body, blen, r);
    ec_net_free(&net);
    return rc;
}

static void print_resp(const struct ec_resp *r, int show_headers)
{
    printf("HTTP %d\n", r->status);
    if (show_headers)
        fputs(r->head, stdout);
    if (!r->len)
        return;
    char *xml;
    size_t xl;
    uint64_t off;
    if (r->body[0] == 0x03 && wbxml_to_xml(r->body, r->len, &xml, &xl, &off) == 0) {
        fwrite(xml, 1, xl, stdout);
        if (xl && xml[xl - 1] != '\n')
            putchar('\n');
        free(xml);
    } else {
        fwrite(r->body, 1, r->len, stdout);
        putchar('\n');
    }
}

int ec_encode(const char *xml, size_t len, uint8_t **out, size_t *olen)
{
    uint64_t off;
    const char *why = NULL;
    if (wbxml_from_xml(xml, len, out, olen, &off, &why) < 0) {
        fprintf(stderr, "easclient: XML byte %llu: %s\n", (unsigned long long)off,
                why ? why : "cannot encode");
        return -1;
    }
    return 0;
}

/* The text of the first <Name>...</Name> in xml, or "" (the answers are
 * our own decoder's output: no attributes on these elements). */
static void xml_text(const char *xml, const char *name, char *out, size_t n)
{
    char open[64];
    snprintf(open, sizeof(open), "<%s>", name);
    out[0] = '\0';
    const char *p = strstr(xml, open);
    if (!p)
        return;
    p += strlen(open);
    size_t k = strcspn(p, "<");
    if (k >= n)
        k = n - 1;
    memcpy(out, p, k);
    out[k] = '\0';
}

static int one_provision(const struct opts *o, const char *key, int status, struct ec_resp *r,
                         char **xml_out)
{
    char xml[2048];
    int n =
        snprintf(xml, sizeof(xml), "<Provision xmlns=\"Provision\" xmlns:settings=\"Settings\">");
    if (o->devinfo && !key)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                      "<settings:DeviceInformation><settings:Set><settings:Model>%s</"
                      "settings:Model><settings:OS>easclient 1.0</settings:OS>"
                      "<settings:FriendlyName>easclient</settings:FriendlyName></settings:Set>"
                      "</settings:DeviceInformation>",
                      o->devinfo);
    n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                  "<Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>");
    if (key)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                      "<PolicyKey>%s</PolicyKey><Status>%d</Status>", key, status);
    snprintf(xml + n, sizeof(xml) - (size_t)n, "</Policy></Policies></Provision>");
    uint8_t *wb;
    size_t wl;
    if (ec_encode(xml, strlen(xml), &wb, &wl) < 0)
        return -1;
    int rc = http_post(o, "Provision", wb, wl, NULL, r);
    free(wb);
    if (rc < 0)
        return -1;
    *xml_out = NULL;
    size_t xl;
    uint64_t off;
    if (r->len && wbxml_to_xml(r->body, r->len, xml_out, &xl, &off) < 0)
        *xml_out = NULL;
    return 0;
}

static int provision(const struct opts *o)
{
    struct ec_resp r;
    char *xml;
    if (one_provision(o, NULL, 1, &r, &xml) < 0)
        return 1;
    char key[32], st[16];
    if (r.status != 200 || !xml) {
        printf("download: HTTP %d\n", r.status);
        free(xml);
        ec_resp_free(&r);
        return 1;
    }
    if (strstr(xml, "RemoteWipe")) {
        printf("remote_wipe\n%s", xml);
        free(xml);
        ec_resp_free(&r);
        return 2;
    }
    xml_text(xml, "PolicyKey", key, sizeof(key));
    xml_text(xml, "Status", st, sizeof(st));
    int has_doc = strstr(xml, "EASProvisionDoc") != NULL;
    printf("download: status=%s temporary_key=%s document=%s\n", st, key, has_doc ? "yes" : "no");
    if (getenv("EASCLIENT_SHOW"))
        fputs(xml, stdout);
    free(xml);
    ec_resp_free(&r);
    if (!key[0])
        return 1;
    if (one_provision(o, o->ack_key ? o->ack_key : key, o->ack_status, &r, &xml) < 0)
        return 1;
    if (r.status != 200 || !xml) {
        printf("acknowledge: HTTP %d\n", r.status);
        free(xml);
        ec_resp_free(&r);
        return 1;
    }
    char pst[16] = "";
    const char *pol = strstr(xml, "<Policy>");
    if (pol)
        xml_text(pol, "Status", pst, sizeof(pst));
    xml_text(xml, "PolicyKey", key, sizeof(key));
    printf("acknowledge: policy_status=%s\n", pst);
    if (getenv("EASCLIENT_SHOW"))
        fputs(xml, stdout);
    free(xml);
    ec_resp_free(&r);
    if (!key[0] || strcmp(pst, "1") != 0)
        return 1;
    printf("policy_key=%s\n", key);
    return 0;
}

static int session(const struct opts *o, const char *script)
{
    if (!script) {
        usage();
        return 2;
    }
    FILE *rep = NULL;
    if (o->report && !(rep = fopen(o->report, "w"))) {
        fprintf(stderr, "easclient: %s: %s\n", o->report, strerror(errno));
        return 2;
    }
    struct ec_session_opts so = {.t = &o->t,
                                 .user = o->user,
                                 .password = o->password,
                                 .device = o->device,
                                 .type = o->type,
                                 .version = o->version,
                                 .script = script,
                                 .report = rep};
    int rc = ec_session_run(&so);
    if (rep)
        fclose(rep);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {.type = "iPhone", .version = "14.1", .ack_status = 1, .t = {.timeout_s = 10}};
    const char *url = NULL;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-' || npos == 2) {
            if (npos == 2) {
                usage();
                return 2;
            }
            pos[npos++] = a;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--base64") == 0) {
            o.base64 = 1;
            continue;
        }
        if (strcmp(a, "--show-headers") == 0) {
            o.show_headers = 1;
            continue;
        }
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--url") == 0)
            url = v;
        else if (strcmp(a, "--user") == 0)
            o.user = v;
        else if (strcmp(a, "--device") == 0)
            o.device = v;
        else if (strcmp(a, "--type") == 0)
            o.type = v;
        else if (strcmp(a, "--version") == 0)
            o.version = v;
        else if (strcmp(a, "--policy-key") == 0)
            o.policy_key = v;
        else if (strcmp(a, "--raw") == 0)
            o.raw = v;
        else if (strcmp(a, "--devinfo") == 0)
            o.devinfo = v;
        else if (strcmp(a, "--ack-key") == 0)
            o.ack_key = v;
        else if (strcmp(a, "--ack-status") == 0)
            o.ack_status = atoi(v);
        else if (strcmp(a, "--timeout") == 0)
            o.t.timeout_s = atoi(v) > 0 ? atoi(v) : 10;
        else if (strcmp(a, "--password") == 0)
            o.password = v;
        else if (strcmp(a, "--cafile") == 0)
            o.t.cafile = v;
        else if (strcmp(a, "--sni") == 0)
            o.t.sni = v;
        else if (strcmp(a, "--report") == 0)
            o.report = v;
        else if (strcmp(a, "--header") == 0 && o.n_headers < MAX_HEADERS)
            o.headers[o.n_headers++] = v;
        else {
            fprintf(stderr, "easclient: unknown option %s\n", a);
            usage();
            return 2;
        }
    }
    if (!url || !o.user || !o.device || !npos || ec_url_parse(url, &o.t) < 0) {
        usage();
        return 2;
    }
    const char *cmd = pos[0];
    if (strcmp(cmd, "provision") == 0)
        return provision(&o);
    if (strcmp(cmd, "session") == 0)
        return session(&o, pos[1]);
    uint8_t *body = NULL;
    size_t blen = 0;
    if (o.raw) {
        body = (uint8_t *)read_file(o.raw, &blen);
        if (!body)
            return 2;
    } else if (pos[1]) {
        size_t xl;
        char *xml = read_file(pos[1], &xl);
        if (!xml)
            return 2;
        int rc = ec_encode(xml, xl, &body, &blen);
        free(xml);
        if (rc < 0)
            return 2;
    }
    struct ec_resp r;
    int rc = http_post(&o, cmd, body, blen, o.policy_key, &r);
    free(body);
    if (rc < 0)
        return 1;
    print_resp(&r, o.show_headers);
    ec_resp_free(&r);
    return 0;
}
