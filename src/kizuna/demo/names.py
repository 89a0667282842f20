"""Word lists for the demo company: people, companies, industries, regions and texts in Japanese."""

# (kanji, romaji) family and given names.
FAMILY_NAMES: tuple[tuple[str, str], ...] = (
    ("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"),
    ("伊藤", "ito"), ("渡辺", "watanabe"), ("山本", "yamamoto"), ("中村", "nakamura"),
    ("小林", "kobayashi"), ("加藤", "kato"), ("吉田", "yoshida"), ("山田", "yamada"),
    ("佐々木", "sasaki"), ("山口", "yamaguchi"), ("松本", "matsumoto"), ("井上", "inoue"),
    ("木村", "kimura"), ("林", "hayashi"), ("斎藤", "saito"), ("清水", "shimizu"),
    ("山崎", "yamazaki"), ("森", "mori"), ("池田", "ikeda"), ("橋本", "hashimoto"),
    ("阿部", "abe"), ("石川", "ishikawa"), ("前田", "maeda"), ("藤田", "fujita"),
    ("小川", "ogawa"), ("岡田", "okada"), ("後藤", "goto"), ("長谷川", "hasegawa"),
    ("村上", "murakami"), ("近藤", "kondo"), ("石井", "ishii"), ("坂本", "sakamoto"),
    ("遠藤", "endo"), ("青木", "aoki"), ("藤井", "fujii"), ("西村", "nishimura"),
)  # fmt: skip

GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("翔太", "shota"), ("大輔", "daisuke"), ("健太", "kenta"), ("拓也", "takuya"),
    ("直樹", "naoki"), ("亮", "ryo"), ("誠", "makoto"), ("悠人", "yuto"),
    ("和也", "kazuya"), ("達也", "tatsuya"), ("陽子", "yoko"), ("美咲", "misaki"),
    ("由美", "yumi"), ("恵", "megumi"), ("彩", "aya"), ("真由美", "mayumi"),
    ("千尋", "chihiro"), ("沙織", "saori"), ("舞", "mai"), ("優子", "yuko"),
    ("香織", "kaori"), ("奈々", "nana"), ("浩", "hiroshi"), ("隆", "takashi"),
    ("聡", "satoshi"), ("葵", "aoi"), ("結衣", "yui"), ("蓮", "ren"),
)  # fmt: skip

ENGLISH_GIVEN_NAMES = (
    "Emily", "James", "Olivia", "Daniel", "Sophia", "Michael", "Grace", "Ethan",
    "Chloe", "Ryan", "Hannah", "Lucas", "Priya", "Wei", "Mei", "Arjun",
)  # fmt: skip
ENGLISH_FAMILY_NAMES = (
    "Smith", "Johnson", "Lee", "Tan", "Chen", "Wong", "Brown", "Taylor",
    "Wilson", "Kumar", "Lim", "Davis", "Martin", "Clark",
)  # fmt: skip

# (kanji stem, romaji stem) for Japanese company names.
COMPANY_STEMS: tuple[tuple[str, str], ...] = (
    ("北斗", "hokuto"), ("大和", "yamato"), ("三栄", "sanei"), ("富士見", "fujimi"),
    ("光洋", "koyo"), ("青葉", "aoba"), ("旭日", "kyokujitsu"), ("桜井", "sakurai"),
    ("中央", "chuo"), ("東和", "towa"), ("白鷺", "shirasagi"), ("若葉", "wakaba"),
    ("明星", "myojo"), ("瑞穂", "mizuho"), ("蒼天", "soten"), ("千代田", "chiyoda"),
    ("湊", "minato"), ("葛城", "katsuragi"), ("日向", "hyuga"), ("常盤", "tokiwa"),
    ("美浜", "mihama"), ("高砂", "takasago"), ("朝霧", "asagiri"), ("丸山", "maruyama"),
)  # fmt: skip

# (kanji suffix, romaji suffix, industry)
COMPANY_KINDS: tuple[tuple[str, str, str], ...] = (
    ("物流", "butsuryu", "物流・運輸"),
    ("製作所", "seisakusho", "製造業"),
    ("工業", "kogyo", "製造業"),
    ("商事", "shoji", "商社・卸売"),
    ("不動産", "fudosan", "不動産"),
    ("建設", "kensetsu", "建設"),
    ("食品", "shokuhin", "食品"),
    ("電機", "denki", "電機・電子部品"),
    ("薬品", "yakuhin", "医薬品"),
    ("印刷", "insatsu", "印刷・広告"),
    ("システムズ", "systems", "IT・ソフトウェア"),
    ("メディカル", "medical", "医療・ヘルスケア"),
    ("キャリア", "career", "人材サービス"),
    ("リテール", "retail", "小売"),
    ("ゼミナール", "seminar", "教育"),
    ("フィナンシャル", "financial", "金融"),
)

# (Japanese, romaji) qualifiers that tell apart companies whose plain names are taken.
COMPANY_QUALIFIERS: tuple[tuple[str, str], ...] = (
    ("ホールディングス", "holdings"), ("テクノ", "techno"), ("サービス", "service"),
    ("ソリューションズ", "solutions"), ("ネットワーク", "network"), ("東日本", "east"),
    ("西日本", "west"), ("インターナショナル", "international"),
)  # fmt: skip

# (English stem, English suffix, industry)
ENGLISH_STEMS = (
    "Nexus", "Bluewave", "Brightpath", "Crescent", "Summit", "Harbor", "Evergreen",
    "Northstar", "Pinecrest", "Lumen", "Vertex", "Silverline", "Keystone", "Atlas",
)  # fmt: skip
ENGLISH_KINDS: tuple[tuple[str, str], ...] = (
    ("Logistics", "物流・運輸"),
    ("Systems", "IT・ソフトウェア"),
    ("Foods", "食品"),
    ("Retail", "小売"),
    ("Partners", "コンサルティング"),
    ("Health", "医療・ヘルスケア"),
    ("Labs", "IT・ソフトウェア"),
    ("Capital", "金融"),
    ("Engineering", "製造業"),
)

DOMESTIC_REGIONS = (
    "関東",
    "関東",
    "関東",
    "関西",
    "関西",
    "中部",
    "九州",
    "東北",
    "北海道",
    "中国・四国",
)
# (region, company name suffix, domain suffix)
OVERSEAS: tuple[tuple[str, str, str], ...] = (
    ("シンガポール", "Pte. Ltd.", "com.sg"),
    ("アメリカ", "Inc.", "com"),
    ("イギリス", "Ltd.", "co.uk"),
)

JOB_TITLES = {
    "champion": ("DX推進室 室長", "経営企画部 マネージャー", "業務改革チーム リーダー"),
    "admin": ("情報システム部 主任", "情報システム部", "業務推進課 システム担当"),
    "decision_maker": ("取締役 CIO", "執行役員", "事業本部長", "代表取締役"),
    "billing": ("経理部", "総務部 経理担当", "管理部"),
    "end_user": ("営業部", "マーケティング部", "カスタマーサポート部", "企画部", "物流管理部"),
}
ENGLISH_JOB_TITLES = {
    "champion": ("Head of Operations", "Digital Transformation Lead"),
    "admin": ("IT Administrator", "Systems Engineer"),
    "decision_maker": ("COO", "VP Operations", "CEO"),
    "billing": ("Finance Manager", "Accounts Payable"),
    "end_user": ("Sales", "Marketing", "Customer Support", "Planning"),
}

# Why customers leave, by the cause the simulator gave them.
CHURN_REASONS: dict[str, tuple[str, ...]] = {
    "low_engagement": (
        "社内での利用定着が進まなかった",
        "期待した効果が得られず、利用が広がらなかった",
    ),
    "champion_left": (
        "推進担当者の退職により社内の推進者が不在に",
        "管理者交代後、運用が引き継がれず利用が止まった",
    ),
    "external": (
        "予算削減のため契約を終了",
        "競合製品(他社BIツール)へ乗り換え",
        "事業縮小に伴う解約",
        "親会社の標準ツールに統一",
        "必要なデータ連携機能が不足",
    ),
}

# Comments left with NPS answers, by band.
NPS_COMMENTS: dict[str, tuple[str, ...]] = {
    "promoter": (
        "現場が自分でデータを見られるようになり、会議が速くなった。",
        "サポートの対応が早く、安心して使えている。",
        "他部署にも勧めたい。",
    ),
    "passive": (
        "便利だが、使いこなせているのは一部のメンバーだけ。",
        "レポートの共有方法がもう少し簡単だと良い。",
        "",
    ),
    "detractor": (
        "操作が難しく、社内に広がらない。",
        "担当者が替わってから使い方が分からなくなった。",
        "価格に見合う効果をまだ感じられない。",
    ),
}

HANDOFF_OUTCOMES = (
    "営業日報の集計を自動化し、週次会議の準備時間を半減したい。",
    "全拠点の在庫データを一つのダッシュボードで見られるようにしたい。",
    "経営会議で使うKPIを毎朝自動で更新したい。",
    "Excelでの手作業集計をなくし、月次決算を3営業日短縮したい。",
    "現場のリーダーが自分でデータを見て判断できる状態にしたい。",
)
HANDOFF_PAINS = (
    "部署ごとにExcelが乱立し、数字が合わない。",
    "レポート作成が特定の担当者に属人化している。",
    "既存のBIツールが難しく、利用者が増えなかった。",
    "データの更新が月1回で、意思決定が遅れている。",
)
HANDOFF_STAKEHOLDERS = (
    "決裁者: {decision}様 / 推進担当: {champion}様 / システム管理者: {admin}様",
    "推進担当: {champion}様(現場の信頼が厚い)、決裁者: {decision}様、管理者: {admin}様",
)
HANDOFF_CONTRACT_NOTES = (
    "年間契約。初年度は導入支援パック込み。",
    "まずは一部門で開始し、3か月後に全社展開を検討。",
    "月額契約。利用が定着すれば年間契約へ切り替えの意向。",
    "価格交渉あり(10%値引き)。次回更新時は定価に戻す旨を合意済み。",
)
HANDOFF_RISKS = (
    "情報システム部門の工数が限られており、初期設定が遅れる可能性。",
    "前任ツールの失敗経験があり、現場の期待値が低い。",
    "決裁者が年度末に異動する可能性あり。",
    "特になし。",
)

NOTES: tuple[tuple[str, str], ...] = (
    ("利用状況の確認", "主要部署でのログインが安定。来月は新機能の紹介を予定。"),
    ("問い合わせ対応", "CSV取り込みのエラーについて問い合わせあり。手順書を送付して解決。"),
    ("新機能の案内", "アラート機能をご案内。推進担当者が部内展開を検討中。"),
    ("担当者との電話", "来期の予算策定が始まったとのこと。活用事例の共有を依頼された。"),
    ("利用低下の兆候", "先月から営業部のログインが減少。次回定例で理由を確認する。"),
    ("成功事例の共有", "週次会議の準備時間が約40%短縮したと報告あり。事例化の打診をする。"),
    ("社内勉強会", "先方主催の社内勉強会に参加。質疑に回答。"),
)

# Handoff notes between CS roles (lifecycle): what the onboarding CSM passes to adoption, and
# what adoption passes to expansion; the receiver's replies.
ADOPTION_HANDOFF_GOALS = (
    "キックオフで合意した初期目標を達成。売上・在庫の主要ダッシュボードを公開し、週次会議での利用が始まった。",
    "管理者・推進担当者向けトレーニングを完了。営業部と経営企画部でログインが定着し、レポートの定期配信も設定済み。",
    "基幹システムとのデータ連携が完了し、毎朝自動更新のKPIダッシュボードが稼働。経営会議で使われ始めた。",
    "Excel集計の置き換えが完了。月次レポートの作成時間がおよそ半分になったと推進担当者から報告あり。",
    "全ユーザーの招待と権限設定を完了し、最初のレポート共有まで到達(オンボーディング計画のマイルストーンはすべて完了)。",
)
ADOPTION_HANDOFF_ISSUES = (
    "アラート機能が未活用。次の四半期で在庫アラートの設定を提案したい。",
    "営業部以外への展開が未着手。推進担当者が社内説明会を計画中なので、資料作りを支援してください。",
    "CSV取り込みで文字コードのエラーが出ることがある。手順書は送付済み。再発したらサポートへ。",
    "ダッシュボードの閲覧権限が暫定設定のまま。管理者の方と見直しの打ち合わせが必要。",
    "特になし。定例レビューで利用状況の推移を確認してください。",
)
ADOPTION_HANDOFF_RISKS = (
    "推進担当者が来年4月に異動予定との情報あり。後任候補の育成を早めに進めたい。",
    "決裁者の期待は高い一方、現場の利用がまだ一部の部署に偏っている。利用率の推移に注意。",
    "データ連携の設定が遅れた影響で、一部の部門の期待値が下がっている。早めに成果を見せたい。",
    "以前のBIツールで定着に失敗した経緯あり。現場の小さな成功体験を積み重ねることが大切。",
    "特になし。",
)
ADOPTION_HANDOFF_NOTES = (
    "次回の定例は来月第2週で調整中。議事録はタイムラインに記録済みです。",
    "1対多の活用勉強会(月1回)へのご案内済み。質問はメールで受け付けると伝えています。",
    "先方は資料を事前に読み込んでから打ち合わせに臨まれます。資料は2営業日前までに送付を。",
    "推進担当者はメールより電話の方が反応が早いです。",
)
ADOPTION_HANDOFF_REPLIES = (
    "引き継ぎありがとうございます。来週、推進担当者の方との顔合わせを設定しました。",
    "内容を確認しました。アラート機能のご提案は次回の定例で行います。",
    "承知しました。利用率の推移を毎週確認し、変化があれば共有します。",
    "ありがとうございます。権限の見直しは管理者の方と今月中に実施します。",
    "確認しました。後任候補の方にも早めに操作トレーニングをご案内します。",
)
EXPANSION_HANDOFF_GOALS = (
    "利用が全社に定着し、定例レビューで会議準備時間の短縮(約40%)を確認済み。",
    "席の利用率が9割を超えた状態が続いており、追加部門から利用の要望が出ている。",
)
EXPANSION_HANDOFF_ISSUES = (
    "Mirai Connect(データ連携アドオン)の見積もりを依頼されている。",
    "上位プランへの切り替え時期を、来期予算と合わせて相談中。",
)
EXPANSION_HANDOFF_RISKS = (
    "予算の確定は3月。ご提案は2月中に。",
    "特になし。",
)
EXPANSION_HANDOFF_NOTES = (
    "成功事例としての掲載に前向きなご意向です。",
    "決裁者の方は投資対効果の数字を重視されます。",
)
EXPANSION_HANDOFF_REPLIES = (
    "ありがとうございます。見積もりは今週中にご提示します。",
    "承知しました。予算時期に合わせて提案の準備を進めます。",
)
