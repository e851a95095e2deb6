/* enr_msg: the English catalogue of the enrollment portal (see msg.h). */
#include "enroll/msg.h"

const char *const enr_msg_en[ENR_MSG_COUNT] = {
    [ENR_MSG_HTML_LANG] = "en",
    [ENR_MSG_LANG_NAME] = "English",
    [ENR_MSG_LANG_SWITCH] = "Language",
    [ENR_MSG_TITLE] = "Set up your work mail",
    [ENR_MSG_INVITED_BY] = "{1} invited you to set up the mail account {2} ({3}) on a phone or "
                           "tablet.",
    [ENR_MSG_INVITED] =
        "You are invited to set up the mail account {1} ({2}) on a phone or tablet.",
    [ENR_MSG_EXPIRES] = "The invitation can be used until {1}.",
    [ENR_MSG_NO_EXPIRY] = "The invitation does not expire.",
    [ENR_MSG_USES_LEFT] = "Devices it can still set up: {1}.",
    [ENR_MSG_PICK] = "Which device do you want to set up?",
    [ENR_MSG_PLAT_IOS] = "iPhone or iPad",
    [ENR_MSG_PLAT_ANDROID] = "Android phone or tablet",
    [ENR_MSG_PLAT_OTHER] = "Another device or mail app (manual settings)",
    [ENR_MSG_CONTINUE] = "Continue",
    [ENR_MSG_WHAT_NEXT] = "Open this page on the device you want to set up. When you continue, "
                          "the invitation is used: a certificate is made for you, and the next "
                          "page gives you the file to install and the steps to follow.",
    [ENR_MSG_ERR_TITLE] = "This invitation cannot be used",
    [ENR_MSG_ERR_MALFORMED] = "The key in this link is not complete or has been changed. Open the "
                              "link from the invitation mail again, or scan its QR code.",
    [ENR_MSG_ERR_UNKNOWN] = "No invitation has this key. Check that you opened the whole link "
                            "from the invitation mail.",
    [ENR_MSG_ERR_USED] = "This invitation has been used already.",
    [ENR_MSG_ERR_EXPIRED] = "This invitation expired on {1}.",
    [ENR_MSG_ERR_WITHDRAWN] = "This invitation was withdrawn.",
    [ENR_MSG_ERR_LIMIT] = "Too many requests. Try again in {1} seconds.",
    [ENR_MSG_ERR_PLATFORM] = "Choose the kind of device you want to set up.",
    [ENR_MSG_ERR_INTERNAL] = "Something went wrong on the server; nothing was used. Try again in "
                             "a few minutes.",
    [ENR_MSG_ERR_DOWNLOAD] = "This download link has expired. Open the invitation link again; if "
                             "the invitation was used already, you need a new one.",
    [ENR_MSG_ERR_NOT_FOUND] = "There is no such page.",
    [ENR_MSG_ASK_ADMIN] = "If you need help, ask your administrator for a new invitation.",
    [ENR_MSG_DONE_TITLE] = "Almost done",
    [ENR_MSG_DONE_INTRO] = "A certificate for {1} has been made. Follow these steps on this "
                           "device.",
    [ENR_MSG_DL_PROFILE] = "Download the profile",
    [ENR_MSG_DL_P12] = "Download the certificate",
    [ENR_MSG_DL_NOTE] = "The download link works for {1} minutes.",
    [ENR_MSG_ONCE_NOTE] = "This page is shown only once: keep it open until you have finished.",
    [ENR_MSG_IOS_STEP1] = "Tap \u201cDownload the profile\u201d and allow the download.",
    [ENR_MSG_IOS_STEP2] = "Open Settings, tap \u201cProfile Downloaded\u201d, then Install, and "
                          "enter your device passcode when asked.",
    [ENR_MSG_IOS_STEP3] = "Open Mail: the account {1} is there. Enter your mail password when "
                          "asked.",
    [ENR_MSG_PW_LABEL] = "Certificate password:",
    [ENR_MSG_AND_STEP1] = "Tap \u201cDownload the certificate\u201d. When Android asks for the "
                          "password, type the certificate password shown above.",
    [ENR_MSG_AND_STEP2] = "Name the certificate \u201cMail\u201d and choose \u201cVPN and "
                          "apps\u201d (or \u201cApps\u201d) when Android asks what it is for.",
    [ENR_MSG_AND_GMAIL] = "Gmail",
    [ENR_MSG_AND_GMAIL_STEPS] = "Settings \u2192 Add account \u2192 Exchange and Office 365 "
                                "\u2192 enter {1} \u2192 Manual setup \u2192 Exchange. Under "
                                "Client certificate choose \u201cMail\u201d; server {2}, port "
                                "443, security SSL/TLS.",
    [ENR_MSG_AND_SAMSUNG] = "Samsung Email",
    [ENR_MSG_AND_SAMSUNG_STEPS] = "Add account \u2192 Microsoft Exchange ActiveSync \u2192 enter "
                                  "{1} and your password \u2192 Manual setup. Turn on \u201cClient "
                                  "certificate\u201d and choose \u201cMail\u201d; Exchange server "
                                  "{2}, \u201cUse secure connection (SSL)\u201d on.",
    [ENR_MSG_OTHER_INTRO] = "Download the certificate and install it on the device (its password "
                            "is shown above), then add an Exchange ActiveSync account in your "
                            "mail app with these settings.",
    [ENR_MSG_SETTINGS] = "Account settings",
    [ENR_MSG_S_TYPE] = "Account type",
    [ENR_MSG_S_TYPE_VALUE] = "Exchange ActiveSync",
    [ENR_MSG_S_SERVER] = "Server",
    [ENR_MSG_S_PORT] = "Port",
    [ENR_MSG_S_SECURITY] = "Security",
    [ENR_MSG_S_SECURITY_VALUE] = "SSL/TLS",
    [ENR_MSG_S_USER] = "User name",
    [ENR_MSG_S_EMAIL] = "E-mail address",
    [ENR_MSG_S_PASSWORD] = "Password",
    [ENR_MSG_S_PASSWORD_VALUE] = "your usual mail password",
    [ENR_MSG_S_CERT] = "Client certificate",
    [ENR_MSG_S_CERT_VALUE] = "the downloaded certificate",
    [ENR_MSG_BIND_NOTE] = "The first time the device syncs mail, the certificate is tied to it: "
                          "from then on it works on this device only.",
};
