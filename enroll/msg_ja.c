/* enr_msg: the Japanese catalogue of the enrollment portal (see msg.h). */
#include "enroll/msg.h"

const char *const enr_msg_ja[ENR_MSG_COUNT] = {
    [ENR_MSG_HTML_LANG] = "ja",
    [ENR_MSG_LANG_NAME] = "日本語",
    [ENR_MSG_LANG_SWITCH] = "言語",
    [ENR_MSG_TITLE] = "業務用メールの設定",
    [ENR_MSG_INVITED_BY] = "{1} さんから、スマートフォンまたはタブレットにメールアカウント {2} "
                           "({3}) を設定するよう招待されています。",
    [ENR_MSG_INVITED] = "スマートフォンまたはタブレットにメールアカウント {1} ({2}) "
                        "を設定するよう招待されています。",
    [ENR_MSG_EXPIRES] = "この招待は {1} まで使えます。",
    [ENR_MSG_NO_EXPIRY] = "この招待に有効期限はありません。",
    [ENR_MSG_USES_LEFT] = "あと {1} 台の端末を設定できます。",
    [ENR_MSG_PICK] = "設定する端末を選んでください。",
    [ENR_MSG_PLAT_IOS] = "iPhone または iPad",
    [ENR_MSG_PLAT_ANDROID] = "Android のスマートフォンまたはタブレット",
    [ENR_MSG_PLAT_OTHER] = "その他の端末やメールアプリ (手動設定)",
    [ENR_MSG_CONTINUE] = "次へ",
    [ENR_MSG_WHAT_NEXT] = "このページは設定する端末で開いてください。「次へ」を押すと招待が使用"
                          "され、あなた用の証明書が作られます。次のページで、インストールする"
                          "ファイルと手順をご案内します。",
    [ENR_MSG_ERR_TITLE] = "この招待は使用できません",
    [ENR_MSG_ERR_MALFORMED] = "このリンクのキーが不完全か、変更されています。招待メールのリンク"
                              "をもう一度開くか、QR コードを読み取ってください。",
    [ENR_MSG_ERR_UNKNOWN] = "このキーの招待はありません。招待メールのリンクを最後まで開いたか"
                            "確認してください。",
    [ENR_MSG_ERR_USED] = "この招待はすでに使用されています。",
    [ENR_MSG_ERR_EXPIRED] = "この招待は {1} に有効期限が切れました。",
    [ENR_MSG_ERR_WITHDRAWN] = "この招待は取り消されました。",
    [ENR_MSG_ERR_LIMIT] = "リクエストが多すぎます。{1} 秒後にもう一度お試しください。",
    [ENR_MSG_ERR_PLATFORM] = "設定する端末の種類を選んでください。",
    [ENR_MSG_ERR_INTERNAL] = "サーバーで問題が発生しました。招待は使用されていません。数分後に"
                             "もう一度お試しください。",
    [ENR_MSG_ERR_DOWNLOAD] = "このダウンロードリンクは有効期限が切れています。招待のリンクをもう"
                             "一度開いてください。招待が使用済みの場合は新しい招待が必要です。",
    [ENR_MSG_ERR_NOT_FOUND] = "このページはありません。",
    [ENR_MSG_ASK_ADMIN] = "お困りの場合は、管理者に新しい招待を依頼してください。",
    [ENR_MSG_DONE_TITLE] = "あと少しで完了です",
    [ENR_MSG_DONE_INTRO] = "{1} の証明書を作成しました。この端末で次の手順に従ってください。",
    [ENR_MSG_DL_PROFILE] = "プロファイルをダウンロード",
    [ENR_MSG_DL_P12] = "証明書をダウンロード",
    [ENR_MSG_DL_NOTE] = "ダウンロードリンクは {1} 分間有効です。",
    [ENR_MSG_ONCE_NOTE] = "このページは一度しか表示されません。設定が終わるまで開いたままにして"
                          "ください。",
    [ENR_MSG_IOS_STEP1] = "「プロファイルをダウンロード」をタップし、ダウンロードを許可します。",
    [ENR_MSG_IOS_STEP2] = "「設定」を開き、「プロファイルがダウンロードされました」をタップして"
                          "「インストール」を選び、求められたら端末のパスコードを入力します。",
    [ENR_MSG_IOS_STEP3] = "「メール」を開くと、アカウント {1} が追加されています。求められたら"
                          "メールのパスワードを入力します。",
    [ENR_MSG_PW_LABEL] = "証明書のパスワード:",
    [ENR_MSG_AND_STEP1] = "「証明書をダウンロード」をタップします。パスワードを求められたら、"
                          "上に表示された証明書のパスワードを入力します。",
    [ENR_MSG_AND_STEP2] = "証明書の名前を「Mail」とし、用途を聞かれたら「VPN とアプリ」(または"
                          "「アプリ」) を選びます。",
    [ENR_MSG_AND_GMAIL] = "Gmail",
    [ENR_MSG_AND_GMAIL_STEPS] = "設定 → アカウントを追加 → Exchange と Office 365 → {1} を入力 "
                                "→ 手動設定 → Exchange。「クライアント証明書」で「Mail」を選び、"
                                "サーバー {2}、ポート 443、セキュリティの種類 SSL/TLS にします。",
    [ENR_MSG_AND_SAMSUNG] = "Samsung Email",
    [ENR_MSG_AND_SAMSUNG_STEPS] = "アカウントを追加 → Microsoft Exchange ActiveSync → {1} と"
                                  "パスワードを入力 → 手動設定。「クライアント証明書」をオンにして"
                                  "「Mail」を選び、Exchange サーバー {2}、「セキュリティ接続 "
                                  "(SSL) を使用」をオンにします。",
    [ENR_MSG_OTHER_INTRO] = "証明書をダウンロードして端末にインストールし (パスワードは上に表示"
                            "されています)、メールアプリに次の設定で Exchange ActiveSync "
                            "アカウントを追加してください。",
    [ENR_MSG_SETTINGS] = "アカウントの設定",
    [ENR_MSG_S_TYPE] = "アカウントの種類",
    [ENR_MSG_S_TYPE_VALUE] = "Exchange ActiveSync",
    [ENR_MSG_S_SERVER] = "サーバー",
    [ENR_MSG_S_PORT] = "ポート",
    [ENR_MSG_S_SECURITY] = "セキュリティ",
    [ENR_MSG_S_SECURITY_VALUE] = "SSL/TLS",
    [ENR_MSG_S_USER] = "ユーザー名",
    [ENR_MSG_S_EMAIL] = "メールアドレス",
    [ENR_MSG_S_PASSWORD] = "パスワード",
    [ENR_MSG_S_PASSWORD_VALUE] = "いつものメールのパスワード",
    [ENR_MSG_S_CERT] = "クライアント証明書",
    [ENR_MSG_S_CERT_VALUE] = "ダウンロードした証明書",
    [ENR_MSG_BIND_NOTE] = "端末が初めてメールを同期したときに、証明書はその端末に結び付けられ、"
                          "以後はその端末でのみ使えます。",
};
