/*
 * easgate-proxy-lean: the proxy role alone, `easgate proxy -c FILE` without
 * the rest of the house. Why a second binary: easgate links every role's
 * libraries (libcurl and through it GnuTLS, Kerberos, p11-kit, libssh2...;
 * libldap, SQLite, libqrencode, argon2), and the dynamic loader maps,
 * relocates and initialises all of them at start, before main, whatever the
 * role: about 4.7 MiB of RSS that a proxy never uses (docs/operations.md,
 * "Memory"). This program holds only what proxy_main reaches and is linked
 * with --as-needed, so it loads OpenSSL, libuv, libyaml, jansson, hiredis
 * and libxml2 and nothing else. `easgate proxy` runs it in its place
 * (cli/cli_proxy.c); run directly it takes the same arguments.
 */
#include "proxy/proxy.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *conf = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            conf = argv[++i];
        } else {
            fprintf(stderr, "easgate proxy: unexpected argument '%s'\n", argv[i]);
            conf = NULL;
            break;
        }
    }
    if (!conf) {
        fprintf(stderr, "usage: easgate-proxy-lean -c FILE (the same as easgate proxy -c FILE)\n");
        return 2;
    }
    return proxy_main(conf);
}
