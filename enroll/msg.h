/*
 * enr_msg: the enrollment portal's words, one catalogue per language
 * (enroll/msg_en.c, enroll/msg_ja.c).
 *
 * The ids are one X-macro list so that both catalogues are indexed the
 * same way and a unit test can check that no language lacks a string.
 * Strings are plain text (the page escapes them like any other value);
 * "{1}", "{2}", "{3}" mark where the page puts its arguments, each escaped
 * in its turn. A translator may move them but must keep them.
 */
#ifndef EG_ENR_MSG_H
#define EG_ENR_MSG_H

#define ENR_MSG_LIST(X)                                                                            \
    X(HTML_LANG)         /* the lang attribute: "en", "ja" */                                      \
    X(LANG_NAME)         /* the language's own name, on the switch */                              \
    X(LANG_SWITCH)       /* label of the language switch */                                        \
    X(TITLE)             /* the invitation page */                                                 \
    X(INVITED_BY)        /* {1} inviter, {2} user, {3} address */                                  \
    X(INVITED)           /* {1} user, {2} address (no inviter recorded) */                         \
    X(EXPIRES)           /* {1} the time (UTC) */                                                  \
    X(NO_EXPIRY)         /* */                                                                     \
    X(USES_LEFT)         /* {1} how many more devices */                                           \
    X(PICK)              /* the question */                                                        \
    X(PLAT_IOS)          /* */                                                                     \
    X(PLAT_ANDROID)      /* */                                                                     \
    X(PLAT_OTHER)        /* */                                                                     \
    X(CONTINUE)          /* the button */                                                          \
    X(WHAT_NEXT)         /* before the button: what continuing does */                             \
    X(ERR_TITLE)         /* the title of every refusal page */                                     \
    X(ERR_MALFORMED)     /* the key in the link cannot be a key */                                 \
    X(ERR_UNKNOWN)       /* no invitation has this key */                                          \
    X(ERR_USED)          /* */                                                                     \
    X(ERR_EXPIRED)       /* {1} when */                                                            \
    X(ERR_WITHDRAWN)     /* */                                                                     \
    X(ERR_LIMIT)         /* {1} seconds */                                                         \
    X(ERR_PLATFORM)      /* no or an unknown platform chosen */                                    \
    X(ERR_INTERNAL)      /* */                                                                     \
    X(ERR_DOWNLOAD)      /* a download link that is gone */                                        \
    X(ERR_NOT_FOUND)     /* a page that does not exist */                                          \
    X(ASK_ADMIN)         /* the way out of every refusal */                                        \
    X(DONE_TITLE)        /* the page after the choice */                                           \
    X(DONE_INTRO)        /* {1} user */                                                            \
    X(DL_PROFILE)        /* the iOS download button */                                             \
    X(DL_P12)            /* the certificate download button */                                     \
    X(DL_NOTE)           /* {1} minutes */                                                         \
    X(ONCE_NOTE)         /* this page is not shown again */                                        \
    X(IOS_STEP1)         /* */                                                                     \
    X(IOS_STEP2)         /* */                                                                     \
    X(IOS_STEP3)         /* {1} address */                                                         \
    X(PW_LABEL)          /* the PKCS#12 password */                                                \
    X(AND_STEP1)         /* */                                                                     \
    X(AND_STEP2)         /* */                                                                     \
    X(AND_GMAIL)         /* the heading */                                                         \
    X(AND_GMAIL_STEPS)   /* {1} address, {2} host */                                               \
    X(AND_SAMSUNG)       /* the heading */                                                         \
    X(AND_SAMSUNG_STEPS) /* {1} address, {2} host */                                               \
    X(OTHER_INTRO)       /* */                                                                     \
    X(SETTINGS)          /* the heading of the settings table */                                   \
    X(S_TYPE)            /* account type */                                                        \
    X(S_TYPE_VALUE)      /* Exchange ActiveSync */                                                 \
    X(S_SERVER)          /* */                                                                     \
    X(S_PORT)            /* */                                                                     \
    X(S_SECURITY)        /* */                                                                     \
    X(S_SECURITY_VALUE)  /* SSL/TLS */                                                             \
    X(S_USER)            /* */                                                                     \
    X(S_EMAIL)           /* */                                                                     \
    X(S_PASSWORD)        /* */                                                                     \
    X(S_PASSWORD_VALUE)  /* your usual mail password */                                            \
    X(S_CERT)            /* */                                                                     \
    X(S_CERT_VALUE)      /* the downloaded file */                                                 \
    X(BIND_NOTE)         /* the first sync binds the certificate to the device */

enum enr_msg_id {
#define ENR_MSG_ENUM(name) ENR_MSG_##name,
    ENR_MSG_LIST(ENR_MSG_ENUM)
#undef ENR_MSG_ENUM
        ENR_MSG_COUNT
};

enum enr_lang { ENR_LANG_EN, ENR_LANG_JA, ENR_LANG_COUNT };

/* The catalogues; a missing entry is NULL (the unit test refuses that). */
extern const char *const enr_msg_en[ENR_MSG_COUNT];
extern const char *const enr_msg_ja[ENR_MSG_COUNT];

/* The string of id in lang, falling back to English, never NULL. */
const char *enr_msg(enum enr_lang lang, enum enr_msg_id id);

/*
 * The language of a request: lang (a "lang=" parameter the user chose on
 * the switch) when it names one, else the Accept-Language entry of the
 * highest q that names one ("ja-JP" counts as "ja"), else English. Either
 * may be NULL.
 */
enum enr_lang enr_msg_lang(const char *lang, const char *accept_language);

#endif
