"""Word lists behind :mod:`syncd.enrichment`: consumer mail providers and country names.

Plain data, kept apart from the logic so a reviewer can check a list without reading code. All
entries are lower case; the enricher normalises its input the same way before looking anything up.
"""

from __future__ import annotations

__all__ = [
    "COUNTRY_ALIASES",
    "COUNTRY_SUFFIX_SECOND_LEVELS",
    "FREE_MAIL_BRANDS",
    "FREE_MAIL_DOMAINS",
]

#: Consumer mail providers matched on the exact domain or any subdomain of it.
FREE_MAIL_DOMAINS: frozenset[str] = frozenset({
    # Google, Microsoft, Apple, AOL/Yahoo family
    "gmail.com", "googlemail.com",
    "outlook.com", "hotmail.com", "live.com", "msn.com", "passport.com", "windowslive.com",
    "icloud.com", "me.com", "mac.com",
    "aol.com", "aim.com", "ymail.com", "rocketmail.com", "verizon.net",
    # privacy-focused and paid consumer mail
    "proton.me", "protonmail.com", "protonmail.ch", "pm.me",
    "tutanota.com", "tutanota.de", "tutamail.com", "tuta.io", "tuta.com",
    "zoho.com", "zohomail.com", "zohomail.eu", "hey.com", "posteo.de", "posteo.net",
    "mailbox.org", "runbox.com", "hushmail.com", "startmail.com", "disroot.org",
    "mail.com", "email.com", "usa.com", "inbox.com", "lycos.com", "excite.com",
    # Germany, Austria, Switzerland
    "web.de", "t-online.de", "freenet.de", "arcor.de", "online.de", "bluewin.ch", "gmail.de",
    # France, Belgium
    "orange.fr", "wanadoo.fr", "free.fr", "sfr.fr", "laposte.net", "neuf.fr", "bbox.fr",
    "skynet.be", "telenet.be",
    # Italy, Spain, Portugal
    "libero.it", "virgilio.it", "tiscali.it", "alice.it", "tin.it", "email.it",
    "terra.es", "telefonica.net", "sapo.pt",
    # Netherlands, Nordics
    "ziggo.nl", "planet.nl", "home.nl", "kpnmail.nl", "xs4all.nl",
    "telia.com", "online.no", "seznam.cz", "centrum.cz",
    # Poland, Russia and neighbours
    "wp.pl", "o2.pl", "interia.pl", "onet.pl", "op.pl",
    "mail.ru", "bk.ru", "inbox.ru", "list.ru", "rambler.ru", "ukr.net", "i.ua",
    # UK, Ireland
    "btinternet.com", "sky.com", "virginmedia.com", "talktalk.net", "ntlworld.com",
    "blueyonder.co.uk", "eircom.net",
    # North America
    "comcast.net", "att.net", "sbcglobal.net", "bellsouth.net", "cox.net", "charter.net",
    "earthlink.net", "optonline.net", "frontier.com", "juno.com", "netzero.net",
    "shaw.ca", "rogers.com", "sympatico.ca", "telus.net", "videotron.ca",
    # Latin America, Oceania, Asia
    "uol.com.br", "bol.com.br", "terra.com.br", "ig.com.br", "prodigy.net.mx",
    "bigpond.com", "bigpond.net.au", "optusnet.com.au", "xtra.co.nz",
    "qq.com", "163.com", "126.com", "yeah.net", "sina.com", "sina.cn", "sohu.com", "aliyun.com",
    "foxmail.com", "139.com",
    "naver.com", "daum.net", "hanmail.net", "nate.com",
    "rediffmail.com", "sify.com",
})

#: Providers that serve consumer mail under many country domains (``yahoo.co.uk``,
#: ``hotmail.fr``, ``gmx.at``, ``yandex.com.tr``): matched on this label followed by a
#: country-style suffix, see :data:`COUNTRY_SUFFIX_SECOND_LEVELS`.
FREE_MAIL_BRANDS: frozenset[str] = frozenset({
    "yahoo", "hotmail", "outlook", "live", "windowslive", "msn", "aol", "gmx", "yandex",
    "fastmail", "ymail", "protonmail", "icloud", "rambler", "libero", "tiscali",
})

#: Second-level labels used under a country code (``co.uk``, ``com.br``, ``ne.jp``): a brand
#: label followed by one of these and a two-letter code is still that brand's consumer mail.
COUNTRY_SUFFIX_SECOND_LEVELS: frozenset[str] = frozenset({
    "co", "com", "net", "org", "ne", "or", "gen", "web",
})

# Country names, ISO 3166-1 alpha-2 codes and the aliases CRMs and forms actually produce,
# normalised (lower case, punctuation removed, single spaces) -> alpha-2 code. Not exhaustive:
# an unknown country scores no ICP points and says so in the reason.
_COUNTRIES: dict[str, tuple[str, ...]] = {
    "US": ("united states", "united states of america", "usa", "us", "u s", "u s a", "america"),
    "CA": ("canada",),
    "MX": ("mexico", "méxico"),
    "BR": ("brazil", "brasil"),
    "AR": ("argentina",),
    "CL": ("chile",),
    "CO": ("colombia",),
    "PE": ("peru", "perú"),
    "GB": ("united kingdom", "uk", "u k", "great britain", "britain", "england", "scotland",
           "wales", "northern ireland"),
    "IE": ("ireland", "republic of ireland", "éire"),
    "DE": ("germany", "deutschland"),
    "AT": ("austria", "österreich"),
    "CH": ("switzerland", "schweiz", "suisse", "svizzera"),
    "FR": ("france",),
    "BE": ("belgium", "belgique", "belgië"),
    "NL": ("netherlands", "the netherlands", "holland", "nederland"),
    "LU": ("luxembourg",),
    "DK": ("denmark", "danmark"),
    "SE": ("sweden", "sverige"),
    "NO": ("norway", "norge"),
    "FI": ("finland", "suomi"),
    "IS": ("iceland",),
    "ES": ("spain", "españa", "espana"),
    "PT": ("portugal",),
    "IT": ("italy", "italia"),
    "GR": ("greece",),
    "PL": ("poland", "polska"),
    "CZ": ("czech republic", "czechia", "česko"),
    "SK": ("slovakia",),
    "HU": ("hungary",),
    "RO": ("romania",),
    "BG": ("bulgaria",),
    "HR": ("croatia",),
    "SI": ("slovenia",),
    "EE": ("estonia",),
    "LV": ("latvia",),
    "LT": ("lithuania",),
    "UA": ("ukraine",),
    "RU": ("russia", "russian federation"),
    "TR": ("turkey", "türkiye", "turkiye"),
    "IL": ("israel",),
    "AE": ("united arab emirates", "uae"),
    "SA": ("saudi arabia",),
    "EG": ("egypt",),
    "ZA": ("south africa",),
    "NG": ("nigeria",),
    "KE": ("kenya",),
    "IN": ("india",),
    "PK": ("pakistan",),
    "BD": ("bangladesh",),
    "CN": ("china", "people s republic of china", "prc"),
    "HK": ("hong kong",),
    "TW": ("taiwan",),
    "JP": ("japan",),
    "KR": ("south korea", "korea", "republic of korea"),
    "SG": ("singapore",),
    "MY": ("malaysia",),
    "TH": ("thailand",),
    "VN": ("vietnam", "viet nam"),
    "ID": ("indonesia",),
    "PH": ("philippines",),
    "AU": ("australia",),
    "NZ": ("new zealand",),
}

#: Normalised country name, code or alias -> ISO 3166-1 alpha-2 code.
COUNTRY_ALIASES: dict[str, str] = {
    alias: code
    for code, aliases in _COUNTRIES.items()
    for alias in (code.lower(), *aliases)
}
