/*
 * version: what easgate is and which commit it was built from, for
 * `easgate --version` and the easgate_build_info metric of every role.
 * Set by the build (dist/version.cmake); static strings, never freed.
 */
#ifndef EG_VERSION_H
#define EG_VERSION_H

const char *eg_version(void); /* "0.1.0" */
const char *eg_commit(void);  /* short git hash, or "unknown" */

#endif
