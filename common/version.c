/*
 * version: the build's version and commit (common/version.h). Only this
 * file is compiled with them, so a new commit rebuilds one object.
 */
#include "common/version.h"

#ifndef EG_VERSION
#define EG_VERSION "unknown"
#endif
#ifndef EG_COMMIT
#define EG_COMMIT "unknown"
#endif

const char *eg_version(void)
{
    return EG_VERSION;
}

const char *eg_commit(void)
{
    return EG_COMMIT;
}
