/*
 * ec_session: a phone's whole ActiveSync conversation from a script, printed
 * as a transcript that two runs can be compared by (`diff`): the same
 * session straight to a server and through easgate must read the same.
 *
 * So the transcript holds what a person would check -- HTTP statuses,
 * ActiveSync Status codes, folder names and types, item subjects, body
 * sizes -- and never what differs from run to run: SyncKeys, ServerIds,
 * folder ids, policy keys (only whether one was given), timings. Those stay
 * inside: the session remembers folder ids by name and item ServerIds by
 * subject, so a script says "fetch INBOX Test mail 2", as a person would.
 *
 * Like a phone, the session keeps one connection alive across requests,
 * sends a request that a kept-alive connection lost once more on a new one
 * (ec_net), and comes back after a 503 with Retry-After. What the
 * server did with the connection (closed it idle, lost a request, asked to
 * come back) goes to the connection report, not the transcript, with each
 * step's status and time, and a last line of counts:
 *   connections=N closed_idle=N lost=N retried_503=N
 *
 * Script: one command a line, '#' comments, words separated by blanks, the
 * last argument (a subject) may contain blanks:
 *   options
 *   provision                    download; acknowledge when a key came
 *   foldersync
 *   sync FOLDER [WINDOW]         SyncKey 0 the first time, then GetChanges
 *   fetch FOLDER SUBJECT         ItemOperations Fetch of that item's body
 *   ping                         Ping without a body
 *   ping HEARTBEAT FOLDER...     Ping with a body
 *   move FROM TO SUBJECT         MoveItems
 *   sendmail TO SUBJECT          SendMail (14.x WBXML, MIME as opaque data)
 */
#include "easclient.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MAX_FOLDERS 64
#define MAX_ITEMS 512
#define BODY_TRUNCATION 200000
#define MAX_503_RETRIES 3

struct folder {
    char id[256], name[128], key[128];
    int type;
};

struct item {
    int folder;
    char sid[128], subject[256];
};

struct sess {
    const struct ec_session_opts *o;
    struct ec_net net;
    char auth[512];
    char policy_key[64];
    char fs_key[128];
    struct folder folders[MAX_FOLDERS];
    int nf;
    struct item items[MAX_ITEMS];
    int ni;
    int step;
    int sendmails;
    unsigned retried_503; /* answers 503 + Retry-After, sent again */
};

/* ---- small helpers ---- */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* XML text escaping for values that go into request bodies. */
static void xml_escape(char *out, size_t n, const char *s)
{
    size_t k = 0;
    for (; *s && k + 7 < n; s++) {
        const char *e = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : NULL;
        if (e) {
            memcpy(out + k, e, strlen(e));
            k += strlen(e);
        } else {
            out[k++] = *s;
        }
    }
    out[k] = '\0';
}

static const char *folder_class(int type)
{
    switch (type) {
    case 7:
    case 15:
        return "Tasks";
    case 8:
    case 13:
        return "Calendar";
    case 9:
    case 14:
        return "Contacts";
    case 10:
    case 17:
        return "Notes";
    default:
        return "Email";
    }
}

static struct folder *folder_by_name(struct sess *s, const char *name)
{
    for (int i = 0; i < s->nf; i++)
        if (strcmp(s->folders[i].name, name) == 0 &&
            strcmp(folder_class(s->folders[i].type), "Email") == 0)
            return &s->folders[i];
    return NULL;
}

static struct folder *folder_by_id(struct sess *s, const char *id)
{
    for (int i = 0; i < s->nf; i++)
        if (strcmp(s->folders[i].id, id) == 0)
            return &s->folders[i];
    return NULL;
}

/* The item in folder with this subject (or, subject NULL, this ServerId). */
static struct item *item_find(struct sess *s, int folder, const char *subject, const char *sid)
{
    for (int i = 0; i < s->ni; i++) {
        const struct item *it = &s->items[i];
        if (it->folder == folder &&
            strcmp(subject ? it->subject : it->sid, subject ? subject : sid) == 0)
            return &s->items[i];
    }
    return NULL;
}

static void item_drop(struct sess *s, struct item *it)
{
    *it = s->items[--s->ni];
}

/* ---- requests ---- */

/* One request for `cmd` (NULL: OPTIONS); prints nothing. */
static int request(struct sess *s, const char *cmd, const uint8_t *body, size_t blen,
                   const char *ctype, struct ec_resp *r)
{
    const struct ec_session_opts *o = s->o;
    const struct ec_target *t = o->t;
    char target[1024];
    if (cmd) {
        if (ec_target_path(t, target, sizeof(target), cmd, o->user, o->device, o->type) < 0)
            return -1;
    } else {
        snprintf(target, sizeof(target), "%s/Microsoft-Server-ActiveSync", t->prefix);
    }
    bool v6 = strchr(t->host, ':') != NULL;
    bool dflt = strcmp(t->port, t->tls ? "443" : "80") == 0;
    char head[4096];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: easclient/1.0\r\n%s"
                     "MS-ASProtocolVersion: %s\r\n",
                     cmd ? "POST" : "OPTIONS", target, v6 ? "[" : "", t->host, v6 ? "]" : "",
                     dflt ? "" : ":", dflt ? "" : t->port, s->auth, o->version);
    if (s->policy_key[0])
        n += snprintf(head + n, sizeof(head) - (size_t)n, "X-MS-PolicyKey: %s\r\n", s->policy_key);
    if (cmd)
        n += snprintf(head + n, sizeof(head) - (size_t)n,
                      "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, blen);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    if ((size_t)n >= sizeof(head))
        return -1;
    for (int attempt = 0;; attempt++) {
        long t0 = now_ms();
        int rc = ec_net_roundtrip(&s->net, head, (size_t)n, body, blen, r);
        if (rc < 0)
            return rc;
        if (o->report) {
            fprintf(o->report, "%s: HTTP %d in %ld ms (connection %u, request %u on it)\n",
                    s->net.step, r->status, now_ms() - t0, s->net.connects, s->net.on_conn);
            fflush(o->report);
        }
        /* A 503 with Retry-After asks the phone to come back later; phones
         * do. Here up to MAX_503_RETRIES times, after at most a second: a
         * test has no minutes to spare. */
        char ra[32];
        if (r->status != 503 || attempt >= MAX_503_RETRIES ||
            !ec_resp_header(r, "Retry-After", ra, sizeof(ra)))
            return 0;
        int wait_s = atoi(ra) < 1 ? 0 : 1;
        if (o->report) {
            fprintf(o->report, "%s: 503 with Retry-After %s; sent again after %d s\n", s->net.step,
                    ra, wait_s);
            fflush(o->report);
        }
        s->retried_503++;
        ec_resp_free(r);
        sleep((unsigned)wait_s);
    }
}

static int request_xml(struct sess *s, const char *cmd, const char *xml, struct ec_resp *r)
{
    uint8_t *wb;
    size_t wl;
    if (ec_encode(xml, strlen(xml), &wb, &wl) < 0)
        return -1;
    int rc = request(s, cmd, wb, wl, "application/vnd.ms-sync.wbxml", r);
    free(wb);
    return rc;
}

/* Prints "HTTP N <kind>" and parses a WBXML answer into t (empty otherwise).
 * Returns true when t holds an answer. */
static bool answer_head(const struct ec_resp *r, struct ec_tree *t)
{
    memset(t, 0, sizeof(*t));
    printf("HTTP %d", r->status);
    if (r->len == 0) {
        printf(" empty");
        return false;
    }
    if (r->body[0] == 0x03 && ec_tree_parse(t, r->body, r->len) == 0) {
        printf(" wbxml");
        return true;
    }
    char ct[128];
    printf(" other (%s, %zu bytes)",
           ec_resp_header(r, "Content-Type", ct, sizeof(ct)) ? ct : "no type", r->len);
    return false;
}

/* " Name=value" for a node's text when present. */
static void field(const struct ec_tree *t, int from, const char *path, const char *label)
{
    int n = ec_tree_find(t, from, path);
    if (n >= 0)
        printf(" %s=%s", label, t->nodes[n].text ? t->nodes[n].text : "");
}

/* Body size as "estimated/received" bytes, "+truncated" when cut. */
static void body_size(const struct ec_tree *t, int body)
{
    if (body < 0) {
        printf(" body=none");
        return;
    }
    int data = ec_tree_find(t, body, "Data");
    size_t got = data >= 0 ? t->nodes[data].text_len + t->nodes[data].opaque_len : 0;
    const char *est = ec_tree_text(t, body, "EstimatedDataSize");
    printf(" body=%s/%zu%s", est[0] ? est : "-", got,
           strcmp(ec_tree_text(t, body, "Truncated"), "1") == 0 ? "+truncated" : "");
}

/* ---- commands ---- */

static int cmd_options(struct sess *s)
{
    struct ec_resp r;
    if (request(s, NULL, NULL, 0, NULL, &r) < 0)
        return -1;
    printf("%d options: ", s->step);
    struct ec_tree t;
    answer_head(&r, &t);
    ec_tree_free(&t);
    char v[1024];
    printf("; MS-Server-ActiveSync=%s",
           ec_resp_header(&r, "MS-Server-ActiveSync", v, sizeof(v)) ? v : "-");
    printf("; MS-ASProtocolVersions=%s",
           ec_resp_header(&r, "MS-ASProtocolVersions", v, sizeof(v)) ? v : "-");
    int cmds = 0;
    if (ec_resp_header(&r, "MS-ASProtocolCommands", v, sizeof(v)))
        for (char *p = v; p; p = strchr(p + 1, ','))
            cmds++;
    printf("; MS-ASProtocolCommands=%d commands\n", cmds);
    ec_resp_free(&r);
    return 0;
}

static int provision_leg(struct sess *s, const char *key, struct ec_resp *r)
{
    char xml[2048];
    int n =
        snprintf(xml, sizeof(xml), "<Provision xmlns=\"Provision\" xmlns:settings=\"Settings\">");
    if (!key)
        n += snprintf(
            xml + n, sizeof(xml) - (size_t)n,
            "<settings:DeviceInformation><settings:Set><settings:Model>easclient</settings:Model>"
            "<settings:OS>easclient 1.0</settings:OS><settings:FriendlyName>easclient session"
            "</settings:FriendlyName></settings:Set></settings:DeviceInformation>");
    n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                  "<Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>");
    if (key)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                      "<PolicyKey>%s</PolicyKey><Status>1</Status>", key);
    snprintf(xml + n, sizeof(xml) - (size_t)n, "</Policy></Policies></Provision>");
    return request_xml(s, "Provision", xml, r);
}

static void provision_facts(const struct ec_tree *t, char *key, size_t kn)
{
    field(t, 0, "Status", "Status");
    int pol = ec_tree_find(t, 0, "Policies/Policy");
    field(t, pol, "Status", "Policy.Status");
    const char *k = ec_tree_text(t, pol, "PolicyKey");
    printf(" PolicyKey=%s", k[0] ? "present" : "absent");
    printf(" EASProvisionDoc=%s",
           ec_tree_find(t, pol, "Data/EASProvisionDoc") >= 0 ? "present" : "absent");
    if (ec_tree_find(t, 0, "RemoteWipe") >= 0)
        printf(" RemoteWipe=present");
    snprintf(key, kn, "%s", k);
}

static int cmd_provision(struct sess *s)
{
    struct ec_resp r;
    s->net.step = "provision download";
    if (provision_leg(s, NULL, &r) < 0)
        return -1;
    printf("%d provision download: ", s->step);
    struct ec_tree t;
    char key[64] = "";
    if (answer_head(&r, &t))
        provision_facts(&t, key, sizeof(key));
    putchar('\n');
    ec_tree_free(&t);
    ec_resp_free(&r);
    if (!key[0]) {
        printf("%d provision acknowledge: not sent (no PolicyKey to acknowledge)\n", s->step);
        return 0;
    }
    s->net.step = "provision acknowledge";
    if (provision_leg(s, key, &r) < 0)
        return -1;
    printf("%d provision acknowledge: ", s->step);
    char final[64] = "";
    if (answer_head(&r, &t))
        provision_facts(&t, final, sizeof(final));
    putchar('\n');
    ec_tree_free(&t);
    ec_resp_free(&r);
    if (final[0])
        snprintf(s->policy_key, sizeof(s->policy_key), "%s", final);
    return 0;
}

static int cmp_folder_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_foldersync(struct sess *s)
{
    char xml[512], key[300];
    xml_escape(key, sizeof(key), s->fs_key[0] ? s->fs_key : "0");
    snprintf(xml, sizeof(xml),
             "<FolderSync xmlns=\"FolderHierarchy\"><SyncKey>%s</SyncKey></FolderSync>", key);
    struct ec_resp r;
    if (request_xml(s, "FolderSync", xml, &r) < 0)
        return -1;
    printf("%d foldersync: ", s->step);
    struct ec_tree t;
    if (!answer_head(&r, &t)) {
        putchar('\n');
        ec_resp_free(&r);
        return 0;
    }
    field(&t, 0, "Status", "Status");
    field(&t, 0, "Changes/Count", "Count");
    putchar('\n');
    const char *nkey = ec_tree_text(&t, 0, "SyncKey");
    if (nkey[0])
        snprintf(s->fs_key, sizeof(s->fs_key), "%s", nkey);
    char *lines[MAX_FOLDERS];
    int nl = 0;
    int ch = ec_tree_find(&t, 0, "Changes");
    for (int c = ch >= 0 ? t.nodes[ch].child : -1; c >= 0; c = t.nodes[c].next) {
        const char *what = ec_tree_name(&t, c);
        const char *id = ec_tree_text(&t, c, "ServerId");
        struct folder *f = folder_by_id(s, id);
        if (strcmp(what, "Add") == 0 || strcmp(what, "Update") == 0) {
            if (!f && s->nf < MAX_FOLDERS)
                f = &s->folders[s->nf++];
            if (!f)
                continue;
            snprintf(f->id, sizeof(f->id), "%s", id);
            snprintf(f->name, sizeof(f->name), "%s", ec_tree_text(&t, c, "DisplayName"));
            f->type = atoi(ec_tree_text(&t, c, "Type"));
        } else if (strcmp(what, "Delete") == 0 && f) {
            *f = s->folders[--s->nf];
            f = NULL;
        } else {
            continue;
        }
        char *line = NULL;
        if (nl < MAX_FOLDERS &&
            asprintf(&line, "    %s type=%s %s\n",
                     strcmp(what, "Delete") == 0 ? "delete"
                     : what[0] == 'A'            ? "folder"
                                                 : "update",
                     ec_tree_text(&t, c, "Type"), ec_tree_text(&t, c, "DisplayName")) > 0)
            lines[nl++] = line;
    }
    qsort(lines, (size_t)nl, sizeof(lines[0]), cmp_folder_line);
    for (int i = 0; i < nl; i++) {
        fputs(lines[i], stdout);
        free(lines[i]);
    }
    ec_tree_free(&t);
    ec_resp_free(&r);
    return 0;
}

static int cmd_sync(struct sess *s, struct folder *f, int window)
{
    char xml[2048], id[512], key[512];
    xml_escape(id, sizeof(id), f->id);
    xml_escape(key, sizeof(key), f->key);
    if (!f->key[0])
        snprintf(xml, sizeof(xml),
                 "<Sync xmlns=\"AirSync\"><Collections><Collection><SyncKey>0</SyncKey>"
                 "<CollectionId>%s</CollectionId></Collection></Collections></Sync>",
                 id);
    else
        snprintf(
            xml, sizeof(xml),
            "<Sync xmlns=\"AirSync\" xmlns:airsyncbase=\"AirSyncBase\"><Collections><Collection>"
            "<SyncKey>%s</SyncKey><CollectionId>%s</CollectionId><DeletesAsMoves>1</DeletesAsMoves>"
            "<GetChanges>1</GetChanges><WindowSize>%d</WindowSize><Options><FilterType>0</"
            "FilterType>"
            "<airsyncbase:BodyPreference><airsyncbase:Type>1</airsyncbase:Type>"
            "<airsyncbase:TruncationSize>%d</airsyncbase:TruncationSize></"
            "airsyncbase:BodyPreference>"
            "</Options></Collection></Collections></Sync>",
            key, id, window, BODY_TRUNCATION);
    bool initial = !f->key[0];
    struct ec_resp r;
    if (request_xml(s, "Sync", xml, &r) < 0)
        return -1;
    printf("%d sync %s%s: ", s->step, f->name, initial ? " (SyncKey 0)" : "");
    struct ec_tree t;
    if (!answer_head(&r, &t)) {
        printf("%s\n", r.status == 200 && r.len == 0 ? " (no changes)" : "");
        ec_resp_free(&r);
        return 0;
    }
    field(&t, 0, "Status", "Status");
    int col = ec_tree_find(&t, 0, "Collections/Collection");
    field(&t, col, "Class", "Class");
    field(&t, col, "Status", "Collection.Status");
    if (col >= 0)
        printf(" MoreAvailable=%s", ec_tree_find(&t, col, "MoreAvailable") >= 0 ? "yes" : "no");
    const char *nkey = ec_tree_text(&t, col, "SyncKey");
    if (nkey[0])
        snprintf(f->key, sizeof(f->key), "%s", nkey);
    int cmds = ec_tree_find(&t, col, "Commands");
    int na = 0, nc = 0, nd = 0;
    char *lines[MAX_ITEMS];
    int nl = 0;
    int fi = (int)(f - s->folders);
    for (int c = cmds >= 0 ? t.nodes[cmds].child : -1; c >= 0; c = t.nodes[c].next) {
        const char *what = ec_tree_name(&t, c);
        const char *sid = ec_tree_text(&t, c, "ServerId");
        int app = ec_tree_find(&t, c, "ApplicationData");
        const char *subject = ec_tree_text(&t, app, "Subject");
        char *line = NULL;
        if (strcmp(what, "Add") == 0) {
            na++;
            struct item *it = item_find(s, fi, NULL, sid);
            if (!it && s->ni < MAX_ITEMS)
                it = &s->items[s->ni++];
            if (it) {
                it->folder = fi;
                snprintf(it->sid, sizeof(it->sid), "%s", sid);
                snprintf(it->subject, sizeof(it->subject), "%s", subject);
            }
            const char *read = ec_tree_text(&t, app, "Read");
            int body = ec_tree_find(&t, app, "Body");
            int data = ec_tree_find(&t, body, "Data");
            const char *est = ec_tree_text(&t, body, "EstimatedDataSize");
            size_t got = data >= 0 ? t.nodes[data].text_len + t.nodes[data].opaque_len : 0;
            if (asprintf(
                    &line, "    add \"%s\" read=%s body=%s/%zu%s\n", subject, read[0] ? read : "-",
                    body < 0 ? "none"
                    : est[0] ? est
                             : "-",
                    got,
                    strcmp(ec_tree_text(&t, body, "Truncated"), "1") == 0 ? "+truncated" : "") < 0)
                line = NULL;
        } else if (strcmp(what, "Change") == 0) {
            nc++;
            struct item *it = item_find(s, fi, NULL, sid);
            const char *read = ec_tree_text(&t, app, "Read");
            if (asprintf(&line, "    change \"%s\" read=%s\n", it ? it->subject : "(unknown item)",
                         read[0] ? read : "-") < 0)
                line = NULL;
        } else if (strcmp(what, "Delete") == 0 || strcmp(what, "SoftDelete") == 0) {
            nd++;
            struct item *it = item_find(s, fi, NULL, sid);
            if (asprintf(&line, "    %s \"%s\"\n", what[0] == 'D' ? "delete" : "softdelete",
                         it ? it->subject : "(unknown item)") < 0)
                line = NULL;
            if (it)
                item_drop(s, it);
        }
        if (line && nl < MAX_ITEMS)
            lines[nl++] = line;
        else
            free(line);
    }
    if (cmds >= 0)
        printf(" add=%d change=%d delete=%d", na, nc, nd);
    putchar('\n');
    qsort(lines, (size_t)nl, sizeof(lines[0]), cmp_folder_line);
    for (int i = 0; i < nl; i++) {
        fputs(lines[i], stdout);
        free(lines[i]);
    }
    ec_tree_free(&t);
    ec_resp_free(&r);
    return 0;
}

static int cmd_fetch(struct sess *s, struct folder *f, struct item *it)
{
    char xml[2048], id[512], sid[512];
    xml_escape(id, sizeof(id), f->id);
    xml_escape(sid, sizeof(sid), it->sid);
    snprintf(
        xml, sizeof(xml),
        "<ItemOperations xmlns=\"ItemOperations\" xmlns:airsync=\"AirSync\" "
        "xmlns:airsyncbase=\"AirSyncBase\"><Fetch><Store>Mailbox</Store>"
        "<airsync:CollectionId>%s</airsync:CollectionId><airsync:ServerId>%s</airsync:ServerId>"
        "<Options><airsyncbase:BodyPreference><airsyncbase:Type>1</airsyncbase:Type>"
        "<airsyncbase:TruncationSize>%d</airsyncbase:TruncationSize></airsyncbase:BodyPreference>"
        "</Options></Fetch></ItemOperations>",
        id, sid, BODY_TRUNCATION);
    struct ec_resp r;
    if (request_xml(s, "ItemOperations", xml, &r) < 0)
        return -1;
    printf("%d fetch %s \"%s\": ", s->step, f->name, it->subject);
    struct ec_tree t;
    if (answer_head(&r, &t)) {
        field(&t, 0, "Status", "Status");
        int fe = ec_tree_find(&t, 0, "Response/Fetch");
        field(&t, fe, "Status", "Fetch.Status");
        field(&t, fe, "Class", "Class");
        int props = ec_tree_find(&t, fe, "Properties");
        printf(" Subject=%s", ec_tree_find(&t, props, "Subject") >= 0 ? "present" : "absent");
        body_size(&t, ec_tree_find(&t, props, "Body"));
    }
    putchar('\n');
    ec_tree_free(&t);
    ec_resp_free(&r);
    return 0;
}

static int cmd_ping(struct sess *s, int heartbeat, struct folder **fl, int nfl)
{
    struct ec_resp r;
    int rc;
    if (nfl == 0) {
        rc = request(s, "Ping", NULL, 0, "application/vnd.ms-sync.wbxml", &r);
    } else {
        char xml[8192];
        int n = snprintf(xml, sizeof(xml),
                         "<Ping xmlns=\"Ping\"><HeartbeatInterval>%d</HeartbeatInterval><Folders>",
                         heartbeat);
        for (int i = 0; i < nfl && (size_t)n < sizeof(xml); i++) {
            char id[512];
            xml_escape(id, sizeof(id), fl[i]->id);
            n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                          "<Folder><Id>%s</Id><Class>%s</Class></Folder>", id,
                          folder_class(fl[i]->type));
        }
        if ((size_t)n < sizeof(xml))
            snprintf(xml + n, sizeof(xml) - (size_t)n, "</Folders></Ping>");
        rc = request_xml(s, "Ping", xml, &r);
    }
    if (rc < 0)
        return -1;
    if (nfl == 0) {
        printf("%d ping (no body): ", s->step);
    } else {
        printf("%d ping heartbeat=%d", s->step, heartbeat);
        for (int i = 0; i < nfl; i++)
            printf(" %s", fl[i]->name);
        printf(": ");
    }
    struct ec_tree t;
    if (answer_head(&r, &t)) {
        field(&t, 0, "Status", "Status");
        field(&t, 0, "HeartbeatInterval", "HeartbeatInterval");
        int fo = ec_tree_find(&t, 0, "Folders/Folder");
        if (fo >= 0)
            printf(" Folders=");
        for (bool first = true; fo >= 0; fo = ec_tree_next_same(&t, fo), first = false) {
            const char *id = t.nodes[fo].text ? t.nodes[fo].text : "";
            struct folder *f = folder_by_id(s, id);
            printf("%s%s", first ? "" : ",", f ? f->name : "(unknown folder)");
        }
    }
    putchar('\n');
    ec_tree_free(&t);
    ec_resp_free(&r);
    return 0;
}

static int cmd_move(struct sess *s, struct folder *from, struct folder *to, struct item *it)
{
    char xml[2048], sid[512], src[512], dst[512];
    xml_escape(sid, sizeof(sid), it->sid);
    xml_escape(src, sizeof(src), from->id);
    xml_escape(dst, sizeof(dst), to->id);
    snprintf(xml, sizeof(xml),
             "<MoveItems xmlns=\"Move\"><Move><SrcMsgId>%s</SrcMsgId><SrcFldId>%s</SrcFldId>"
             "<DstFldId>%s</DstFldId></Move></MoveItems>",
             sid, src, dst);
    struct ec_resp r;
    if (request_xml(s, "MoveItems", xml, &r) < 0)
        return -1;
    printf("%d move %s -> %s \"%s\": ", s->step, from->name, to->name, it->subject);
    struct ec_tree t;
    if (answer_head(&r, &t)) {
        int resp = ec_tree_find(&t, 0, "Response");
        field(&t, resp, "Status", "Status");
        const char *nsid = ec_tree_text(&t, resp, "DstMsgId");
        printf(" DstMsgId=%s", nsid[0] ? "present" : "absent");
        /* The item is now in `to`; the source keeps its entry until the
         * server's next Sync there says Delete (or says nothing). */
        if (nsid[0] && s->ni < MAX_ITEMS) {
            struct item *moved = &s->items[s->ni++];
            *moved = *it;
            moved->folder = (int)(to - s->folders);
            snprintf(moved->sid, sizeof(moved->sid), "%s", nsid);
        }
    }
    putchar('\n');
    ec_tree_free(&t);
    ec_resp_free(&r);
    return 0;
}

static int cmd_sendmail(struct sess *s, const char *to, const char *subject)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    s->sendmails++;
    char mime[2048];
    int ml = snprintf(
        mime, sizeof(mime),
        "To: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <easclient-%s-%d@easclient.invalid>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Sent by the easclient session script.\r\n",
        to, subject, date, s->o->device, s->sendmails);
    if (ml < 0 || (size_t)ml >= sizeof(mime))
        return -1;
    /* The MIME goes as opaque data, as phones send it: SOGo (via libwbxml)
     * and Exchange read Mime as bytes, not as an inline string. */
    char b64[4096];
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)mime, ml);
    char xml[6144];
    snprintf(
        xml, sizeof(xml),
        "<SendMail xmlns=\"ComposeMail\"><ClientId>easclient-%s-%d</ClientId><SaveInSentItems/>"
        "<Mime><?opaque %s?></Mime></SendMail>",
        s->o->device, s->sendmails, b64);
    struct ec_resp r;
    if (request_xml(s, "SendMail", xml, &r) < 0)
        return -1;
    printf("%d sendmail \"%s\": ", s->step, subject);
    struct ec_tree t;
    if (answer_head(&r, &t))
        field(&t, 0, "Status", "Status");
    putchar('\n');
    ec_tree_free(&t);
    ec_resp_free(&r);
    return 0;
}

/* ---- the script ---- */

/* Splits line into at most max words; the last takes the rest of the line. */
static int split(char *line, char **w, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        w[n++] = p;
        if (n == max)
            break;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    if (n) {
        char *e = w[n - 1] + strlen(w[n - 1]);
        while (e > w[n - 1] && isspace((unsigned char)e[-1]))
            *--e = '\0';
    }
    return n;
}

static int cant(struct sess *s, const char *cmd, const char *why, const char *what)
{
    printf("%d %s: cannot run: %s %s\n", s->step, cmd, why, what);
    return 1;
}

/* One script line; 0 done, 1 could not run (said), -1 no answer, 2 bad line. */
static int run_line(struct sess *s, char *line)
{
    char *w[16];
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", line);
    int n = split(copy, w, 2);
    if (n == 0)
        return 0;
    const char *cmd = w[0];
    char *rest = n > 1 ? w[1] : (char *)"";
    s->step++;
    s->net.step = cmd;
    if (strcmp(cmd, "options") == 0)
        return cmd_options(s);
    if (strcmp(cmd, "provision") == 0)
        return cmd_provision(s);
    if (strcmp(cmd, "foldersync") == 0)
        return cmd_foldersync(s);
    if (strcmp(cmd, "sync") == 0) {
        int k = split(rest, w, 2);
        if (k < 1)
            return 2;
        struct folder *f = folder_by_name(s, w[0]);
        if (!f)
            return cant(s, cmd, "no mail folder named", w[0]);
        return cmd_sync(s, f, k > 1 ? atoi(w[1]) : 25);
    }
    if (strcmp(cmd, "fetch") == 0 || strcmp(cmd, "move") == 0) {
        bool move = cmd[0] == 'm';
        int k = split(rest, w, move ? 3 : 2);
        if (k < (move ? 3 : 2))
            return 2;
        struct folder *f = folder_by_name(s, w[0]);
        if (!f)
            return cant(s, cmd, "no mail folder named", w[0]);
        struct folder *to = move ? folder_by_name(s, w[1]) : NULL;
        if (move && !to)
            return cant(s, cmd, "no mail folder named", w[1]);
        const char *subject = w[move ? 2 : 1];
        struct item *it = item_find(s, (int)(f - s->folders), subject, NULL);
        if (!it)
            return cant(s, cmd, "no item seen with the subject", subject);
        return move ? cmd_move(s, f, to, it) : cmd_fetch(s, f, it);
    }
    if (strcmp(cmd, "ping") == 0) {
        int k = split(rest, w, 16);
        struct folder *fl[15];
        for (int i = 1; i < k; i++)
            if (!(fl[i - 1] = folder_by_name(s, w[i])))
                return cant(s, cmd, "no mail folder named", w[i]);
        if (k == 1)
            return 2;
        return cmd_ping(s, k ? atoi(w[0]) : 0, fl, k ? k - 1 : 0);
    }
    if (strcmp(cmd, "sendmail") == 0) {
        int k = split(rest, w, 2);
        if (k < 2)
            return 2;
        return cmd_sendmail(s, w[0], w[1]);
    }
    return 2;
}

int ec_session_run(const struct ec_session_opts *o)
{
    size_t len;
    FILE *f = strcmp(o->script, "-") == 0 ? stdin : fopen(o->script, "r");
    if (!f) {
        fprintf(stderr, "easclient: cannot open the script %s\n", o->script);
        return 2;
    }
    struct sess *s = calloc(1, sizeof(*s));
    if (!s || ec_net_init(&s->net, o->t, true, o->report) < 0) {
        free(s);
        if (f != stdin)
            fclose(f);
        return 2;
    }
    s->o = o;
    if (o->password && ec_basic_auth(s->auth, sizeof(s->auth), o->user, o->password) < 0) {
        ec_net_free(&s->net);
        free(s);
        return 2;
    }
    char line[1024];
    int rc = 0, lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        len = strcspn(line, "#\r\n");
        line[len] = '\0';
        int r = run_line(s, line);
        fflush(stdout);
        if (r == 2) {
            fprintf(stderr, "easclient: %s:%d: cannot read this command: %s\n", o->script, lineno,
                    line);
            rc = 2;
            break;
        }
        if (r < 0) {
            printf("%d %s: no answer\n", s->step, s->net.step);
            rc = 1;
            break;
        }
        if (r == 1)
            rc = 1;
    }
    if (o->report) {
        fprintf(o->report, "connections=%u closed_idle=%u lost=%u retried_503=%u\n",
                s->net.connects, s->net.closed_idle, s->net.lost, s->retried_503);
        fflush(o->report);
    }
    ec_net_free(&s->net);
    free(s);
    if (f != stdin)
        fclose(f);
    return rc;
}
