"""`relance sample-data`: a realistic, deterministic synthetic source (contract §1).

`generate(out, customers=N, seed=S, as_of=D)` writes customers, invoices, payments and holds
(CSV or Parquet, every value a string) into a folder that `relance run --source` loads with no
rejected row. The same arguments always give byte-identical files.

What the data looks like (choices written down here, as the contract asks):

* **Customers** — about 75 % French, then Belgian, German and British; 85 % companies (`b2b`,
  invented names such as "Transports Moreau SAS" or "Dubois, Girard et Associés"), 15 % persons
  (`b2c`). Addresses are written the way each country writes them (real city names and postal
  codes, invented streets). Language `fr` for France and most of Belgium, `en` otherwise.
  About 10 % have no email, 20 % no phone, 3 % no postal address, and about 0.5 % none of the
  three (their letters are "undeliverable"). 2 % carry `dunning_block`; most companies have a
  `collector`. About 5 % of the French companies are public buyers (segment `public`, named
  "Mairie de <city>"), and about 4 % of the remaining companies are key accounts (`tags`
  `key_account`): drawn from a generator of their own (seed, 16) after everything else, so the
  rest of the data is the same as before the ladders (issue 16).
* **No real contact can be reached**: every email is at a reserved domain (`*.example`,
  `example.com/.net/.org`, RFC 2606), and French and British phone numbers are taken from the
  ranges ARCEP and Ofcom reserve for fiction. German and Belgian numbers are random, in the
  national format.
* **Invoices** — about 10 per customer, issued on business days during the 18 months up to
  `as_of` (some customers start later or stop earlier), due 30, 45 or 60 days later. Amounts are
  drawn as integer cents from log-normal laws (b2c smaller), written with exactly two decimals.
  Currency EUR, GBP for most British customers, and a second currency for about 1.5 % of
  companies. About 3 % of the rows are credit notes (smaller amounts, due on their issue date).
  Invoice numbers run per kind and year in issue order: `INV-2025-000001`, `CN-2025-000001`.
* **Payments** (`paid_date` ≤ `as_of` only) follow the customer's behaviour: on time, late
  (5–90 days after the due date), partial (a fraction, the rest sometimes later), on account
  (monthly lump sums without `invoice_id`, net of credit notes, often rounded down), or never
  (such customers are invoiced for two to four months only). Many credit notes are deducted
  from the payment of the next invoice falling due; the others stay in the credit pool.
  A few invoices are paid twice or rounded up (an excess for the credit pool). A payment that
  names an invoice always names an invoice (never a credit note) of the same customer and
  currency. Bank dates fall on weekdays.
* **Holds** for about 4.5 % of customers: disputes on one invoice, promises (short, customer or
  invoice level), payment plans (customer level, long), legal proceedings (mostly open-ended)
  and a few `other`; some ended, some open-ended, a few starting after `as_of`.

Everything is drawn with numpy from one `default_rng(seed)` in a fixed order and formatted with
pyarrow compute (no Python loop per invoice); CSV files are written by DuckDB (quoted only where
needed), Parquet files by pyarrow (zstd, all columns strings).
"""

from __future__ import annotations

import calendar
import os
import re
import unicodedata
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.sources import COLUMNS, ENTITIES

EPOCH = date(1970, 1, 1)
WINDOW_MONTHS = 18
TERMS = np.array([30, 45, 60])
CURRENCIES = np.array(["EUR", "GBP", "USD"], dtype=object)
EUR, GBP, USD = 0, 1, 2

# Customer payment behaviours.
ON_TIME, LATE, PARTIAL, ON_ACCOUNT, NEVER = range(5)

# --------------------------------------------------------------------------------------------
# Reference lists (invented company names built from common surnames; real cities and codes)
# --------------------------------------------------------------------------------------------

FR_SURNAMES = """Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel
Lefèvre Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine Rousseau
Vincent Mercier Blanc Guérin Boyer Garnier Chevalier François Legrand Gauthier Perrin Robin
Clément Morin Nicolas Henry Roussel Mathieu Masson Marchand Duval Denis Lemaire Noël Meunier
Brun Barbier Arnaud Giraud Roche Renaud Picard Aubert Rolland Lacroix""".split()
FR_FIRST = """Jean Marie Pierre Sophie Nicolas Isabelle Julien Camille Thomas Nathalie Laurent Céline
Antoine Émilie Philippe Claire Mathieu Aurélie Olivier Sandrine Hugo Léa Louis Chloé Maxime
Manon Théo Inès Bruno Valérie Sébastien Hélène""".split()
BE_SURNAMES = """Peeters Janssens Maes Jacobs Mertens Willems Claes Goossens Wouters Desmet Dubois
Lambert Dupont Martin Simon Leclercq Lejeune Renard Dumont Hermans Michiels Lemaire Collard
Declercq Lemmens Gilson Lecomte Pirard Delvaux Baudouin Charlier Hubert Masset""".split()
BE_FIRST = """Marc Anne Luc Christine Pieter Lotte Jan Els Thomas Julie Nicolas Sarah Olivier Céline
Michel Laura François Nathalie Arnaud Charlotte""".split()
DE_SURNAMES = """Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch
Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange
Schmitt Werner Krause Lehmann Köhler Maier Huber Kaiser Fuchs Peters Vogel""".split()
DE_FIRST = """Lukas Anna Jonas Lena Felix Laura Maximilian Julia Paul Sarah Stefan Katrin Michael
Sabine Andreas Claudia Tobias Miriam Jürgen Ursula""".split()
GB_SURNAMES = """Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright Thompson Evans
Walker White Roberts Green Hall Wood Jackson Clarke Harrison Cooper Ward Turner Hughes Edwards
Collins Parker Bennett Morris Price Bailey Murphy Foster Shaw Lloyd""".split()
GB_FIRST = """Oliver Amelia Harry Isla George Emily Jack Ava Charlie Sophie James Grace William Lucy
Daniel Hannah Thomas Chloe Samuel Megan""".split()

BRAND_HEAD = "No Va Ter Al Pi Ze Lo Ka Mi Tra Sol Vi Neo Or Bel Cap Lu Syn Ar Ori Ve Axi".split()
BRAND_TAIL = "tek via ris lis nova gen tis com lia dis ma lys tor ane xis rio".split()

# Per country: activity before the surname, activity after it, legal forms (with weights),
# "& sons" and "partners" phrases, email local parts of accounts departments.
COUNTRY = {
    "FR": dict(
        surnames=FR_SURNAMES,
        first=FR_FIRST,
        act_pre="""Transports Boulangerie Menuiserie Garage Plomberie Imprimerie Pharmacie Cabinet
        Atelier Maçonnerie Fromagerie Librairie Nettoyage Charpente Serrurerie Traiteur Hôtel
        Carrosserie Fleurs Ambulances Laboratoire Électricité""".split(),
        act_post="""Conseil Immobilier Distribution Services Informatique Industrie Bâtiment Logistique
        Rénovation Négoce Emballages Équipements Peinture Énergies Frères""".split(),
        forms=(["SARL", "SAS", "SA", "EURL", "SASU", "SNC"], [0.33, 0.33, 0.1, 0.1, 0.1, 0.04]),
        sons="& Fils",
        partners="et Associés",
        mail=["compta", "comptabilite", "factures", "facturation", "contact", "administratif"],
    ),
    "BE": dict(
        surnames=BE_SURNAMES,
        first=BE_FIRST,
        act_pre="""Transports Boulangerie Menuiserie Garage Imprimerie Pharmacie Brasserie Chocolaterie
        Atelier Librairie Nettoyage Toitures Fiduciaire Traiteur Carrosserie""".split(),
        act_post="""Conseil Immobilier Distribution Services Informatique Construction Logistique
        Rénovation Import-Export Peinture Frères""".split(),
        forms=(["SRL", "SA", "SC", "SPRL"], [0.55, 0.25, 0.1, 0.1]),
        sons="& Fils",
        partners="et Associés",
        mail=["comptabilite", "factures", "facturation", "info", "admin"],
    ),
    "DE": dict(
        surnames=DE_SURNAMES,
        first=DE_FIRST,
        act_pre="""Bäckerei Autohaus Metallbau Druckerei Tischlerei Elektro Spedition Gärtnerei
        Steuerberatung Malerbetrieb Dachdeckerei Getränke Zimmerei Reinigung""".split(),
        act_post="""Logistik Bau Elektrotechnik Maschinenbau Immobilien Consulting Holztechnik Medien
        Haustechnik Handel Systeme Verpackung""".split(),
        forms=(
            ["GmbH", "AG", "KG", "GmbH & Co. KG", "e.K.", "UG (haftungsbeschränkt)"],
            [0.55, 0.08, 0.1, 0.15, 0.07, 0.05],
        ),
        sons="& Söhne",
        partners="& Partner",
        mail=["buchhaltung", "rechnungen", "rechnungswesen", "info", "finanzen"],
    ),
    "GB": dict(
        surnames=GB_SURNAMES,
        first=GB_FIRST,
        act_pre=[],
        act_post="""Joinery Logistics Engineering Plumbing Printing Catering Consulting Electrical
        Builders Motors Landscaping Bakery Roofing Interiors Freight Supplies""".split(),
        forms=(["Ltd", "Limited", "PLC", "LLP"], [0.7, 0.2, 0.04, 0.06]),
        sons="& Sons",
        partners="& Co",
        mail=["accounts", "accountspayable", "finance", "invoices", "ap"],
    ),
}

# Addresses. FR/GB: "<number> <street>"; BE/DE: "<street> <number>".
FR_STREET_TYPES = (
    ["rue", "avenue", "boulevard", "place", "allée", "chemin", "impasse", "quai"],
    [0.5, 0.17, 0.1, 0.05, 0.06, 0.06, 0.03, 0.03],
)
FR_STREET_NAMES = """de la République|Victor Hugo|Jean Jaurès|des Lilas|du Moulin|de la Gare|Pasteur|
des Écoles|du Général Leclerc|de Verdun|Gambetta|Voltaire|des Acacias|de Paris|Saint-Martin|
du Château|des Tilleuls|Émile Zola|de la Liberté|Nationale|des Vignes|du Port|de l'Église|
des Peupliers|Anatole France|du 8 Mai 1945|des Artisans|de la Mairie""".replace("\n", "").split("|")
FR_COMPLEMENTS = [
    "Bâtiment B, ",
    "ZI Nord, ",
    "ZA du Moulin, ",
    "Parc d'activités des Pins, ",
    "3e étage, ",
    "Résidence Les Cèdres, ",
    "Centre d'affaires Le Forum, ",
]
FR_CITIES = [  # (city, first postal code, how many consecutive codes, weight)
    ("Paris", 75001, 20, 18),
    ("Lyon", 69001, 9, 7),
    ("Marseille", 13001, 16, 7),
    ("Toulouse", 31000, 1, 5),
    ("Nantes", 44000, 1, 4),
    ("Bordeaux", 33000, 1, 4),
    ("Lille", 59000, 1, 4),
    ("Strasbourg", 67000, 1, 3),
    ("Rennes", 35000, 1, 3),
    ("Montpellier", 34000, 1, 3),
    ("Nice", 6000, 1, 3),
    ("Grenoble", 38000, 1, 2),
    ("Dijon", 21000, 1, 2),
    ("Angers", 49000, 1, 2),
    ("Reims", 51100, 1, 2),
    ("Le Havre", 76600, 1, 2),
    ("Saint-Étienne", 42000, 1, 2),
    ("Tours", 37000, 1, 2),
    ("Clermont-Ferrand", 63000, 1, 2),
    ("Limoges", 87000, 1, 1),
    ("Brest", 29200, 1, 1),
    ("Metz", 57000, 1, 1),
    ("Perpignan", 66000, 1, 1),
    ("Rouen", 76000, 1, 2),
    ("Caen", 14000, 1, 1),
    ("Annecy", 74000, 1, 1),
    ("Pau", 64000, 1, 1),
    ("La Rochelle", 17000, 1, 1),
    ("Besançon", 25000, 1, 1),
    ("Villeurbanne", 69100, 1, 1),
]
BE_STREETS = """Rue de la Loi|Avenue Louise|Chaussée de Waterloo|Rue Neuve|Boulevard d'Avroy|Rue des Carmes|
Place Saint-Lambert|Rue de Namur|Avenue de Tervueren|Rue du Marché|Chaussée de Louvain|Rue Haute|
Rue de Fer|Avenue des Combattants|Rue du Pont|Grand-Place""".replace("\n", "").split("|")
BE_CITIES = [
    ("Bruxelles", 1000, 1, 8),
    ("Ixelles", 1050, 1, 3),
    ("Uccle", 1180, 1, 2),
    ("Liège", 4000, 1, 5),
    ("Namur", 5000, 1, 3),
    ("Charleroi", 6000, 1, 4),
    ("Mons", 7000, 1, 2),
    ("Wavre", 1300, 1, 2),
    ("Louvain-la-Neuve", 1348, 1, 1),
    ("Tournai", 7500, 1, 1),
    ("Antwerpen", 2000, 1, 3),
    ("Gent", 9000, 1, 2),
    ("Arlon", 6700, 1, 1),
    ("Verviers", 4800, 1, 1),
]
DE_STREETS = """Hauptstraße|Bahnhofstraße|Gartenstraße|Schulstraße|Dorfstraße|Lindenstraße|Bergstraße|
Kirchstraße|Goethestraße|Schillerstraße|Am Markt|Industriestraße|Friedrichstraße|Mühlenweg|
Waldstraße|Ringstraße|Gewerbepark|Rosenweg""".replace("\n", "").split("|")
DE_CITIES = [
    ("Berlin", 10115, 1, 8),
    ("Hamburg", 20095, 1, 5),
    ("München", 80331, 1, 5),
    ("Köln", 50667, 1, 4),
    ("Frankfurt am Main", 60311, 1, 4),
    ("Stuttgart", 70173, 1, 3),
    ("Düsseldorf", 40213, 1, 3),
    ("Leipzig", 4109, 1, 2),
    ("Dortmund", 44135, 1, 2),
    ("Essen", 45127, 1, 2),
    ("Bremen", 28195, 1, 2),
    ("Dresden", 1067, 1, 2),
    ("Hannover", 30159, 1, 2),
    ("Nürnberg", 90402, 1, 2),
    ("Freiburg im Breisgau", 79098, 1, 1),
]
GB_STREET_NAMES = """High|Station|Church|Victoria|Mill|Park|King|Queen|London|Green|Albert|Manor|
Chapel|Bridge|Market|North""".replace("\n", "").split("|")
GB_STREET_TYPES = (["Street", "Road", "Lane", "Avenue", "Close", "Way"], [0.35, 0.35, 0.1, 0.1, 0.05, 0.05])
GB_COMPLEMENTS = ["Unit 4, Riverside Business Park, ", "Suite 2, ", "First Floor, ", "Unit 12, Enterprise Court, "]
GB_CITIES = [  # (city, outward codes, weight)
    ("London", ["EC1A", "EC2A", "SE1", "N1", "E14", "W1D", "SW1A", "NW1", "WC2N"], 12),
    ("Manchester", ["M1", "M2", "M4"], 4),
    ("Birmingham", ["B1", "B2", "B3"], 4),
    ("Leeds", ["LS1", "LS2"], 3),
    ("Bristol", ["BS1", "BS2"], 3),
    ("Glasgow", ["G1", "G2"], 3),
    ("Edinburgh", ["EH1", "EH2"], 2),
    ("Liverpool", ["L1", "L2"], 2),
    ("Sheffield", ["S1"], 2),
    ("Cardiff", ["CF10"], 2),
    ("Nottingham", ["NG1"], 2),
]
GB_INWARD_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"), dtype=object)

# Phone number prefixes (E.164) and how many random digits follow.
PHONES = {
    # ARCEP numbers reserved for fiction: 01 99 00, 02 61 91, 03 53 01, 04 65 71, 05 36 49, 06 39 98, 09 72 10 + 4 digits.
    "FR": (
        [("+3319900", 4), ("+3326191", 4), ("+3335301", 4), ("+3346571", 4), ("+3353649", 4), ("+3397210", 4)],
        [("+3363998", 4)],
    ),
    "BE": ([("+322", 7), ("+324", 7), ("+3281", 6), ("+3271", 6), ("+3265", 6)], [("+3247", 7), ("+3249", 7)]),
    "DE": (
        [("+4930", 8), ("+4940", 8), ("+4989", 8), ("+49221", 7), ("+4969", 8), ("+49711", 7)],
        [("+49151", 8), ("+49160", 7), ("+49176", 8)],
    ),
    # Ofcom drama numbers: 020 7946 0xxx, 0113/0117/0121/0131/0141/0161 496 0xxx; mobile 07700 900xxx.
    "GB": (
        [
            ("+442079460", 3),
            ("+441134960", 3),
            ("+441174960", 3),
            ("+441214960", 3),
            ("+441314960", 3),
            ("+441414960", 3),
            ("+441614960", 3),
        ],
        [("+447700900", 3)],
    ),
}

COLLECTORS = {
    "FR": ["Claire Fontaine", "Julien Marchand", "Sophie Lemoine", "Karim Benali", "Élodie Caron"],
    "BE": ["Claire Fontaine", "Marc Delhaye"],
    "DE": ["Katrin Vogel"],
    "GB": ["Oliver Grant"],
}

COUNTRY_SHARES = (["FR", "BE", "DE", "GB"], [0.75, 0.10, 0.08, 0.07])


def _slug(text: str) -> str:
    text = text.lower()
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"), ("œ", "oe"), ("æ", "ae"), ("&", " ")):
        text = text.replace(a, b)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def _obj(values) -> np.ndarray:
    return np.array(list(values), dtype=object)


# --------------------------------------------------------------------------------------------
# Small vectorized helpers
# --------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, values, n: int, p=None) -> np.ndarray:
    arr = _obj(values)
    if p is None:
        return arr[rng.integers(0, len(arr), n)]
    p = np.asarray(p, dtype=float)
    return arr[rng.choice(len(arr), size=n, p=p / p.sum())]


def _digits(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """n random zero-padded strings of `width` digits (object array)."""
    if n == 0:
        return np.empty(0, dtype=object)
    return np.char.zfill(rng.integers(0, 10**width, n).astype(str), width).astype(object)


def _int_str(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(str).astype(object)


def _arrow_ids(prefix, seq: np.ndarray, width: int) -> pa.Array:
    """prefix + zero-padded seq, vectorized; prefix a str or a string Array."""
    s = pc.utf8_lpad(pc.cast(pa.array(seq, type=pa.int64()), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, s, "")


def _arrow_dates(days: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.int32()).cast(pa.date32()).cast(pa.string())


def _arrow_amounts(cents: np.ndarray) -> pa.Array:
    cents = np.asarray(cents, dtype=np.int64)
    if len(cents) and cents.min() <= 0:
        raise ValueError("sample amounts must be positive")
    units = pc.cast(pa.array(cents // 100), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), width=2, padding="0")
    return pc.binary_join_element_wise(units, frac, ".")


def _weekday(days: np.ndarray) -> np.ndarray:
    """Monday = 0 … Sunday = 6 (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def _to_weekday(days: np.ndarray, backward: np.ndarray | bool) -> np.ndarray:
    """Move a Saturday or Sunday to the Friday before (backward) or the Monday after."""
    dow = _weekday(days)
    back = np.where(dow == 5, -1, np.where(dow == 6, -2, 0))
    fwd = np.where(dow == 5, 2, np.where(dow == 6, 1, 0))
    return days + np.where(backward, back, fwd)


def _months_back(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + (d.month - 1) - months, 12)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def window_start(as_of: date) -> date:
    """Invoices are issued in (window_start, as_of]: the 18 months up to as_of."""
    return _months_back(as_of, WINDOW_MONTHS)


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Indices where a new run of equal keys starts (keys sorted)."""
    if len(sorted_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


# --------------------------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------------------------


def _company_names(rng, cc: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    c = COUNTRY[cc]
    sur = _obj(c["surnames"])
    sur_slug = _obj(_slug(s) for s in c["surnames"])
    i1 = rng.integers(0, len(sur), n)
    i2 = (i1 + rng.integers(1, len(sur), n)) % len(sur)  # a different second surname
    s1, s1s, s2, s2s = sur[i1], sur_slug[i1], sur[i2], sur_slug[i2]
    forms_v, forms_p = c["forms"]
    form = _pick(rng, forms_v, n, forms_p)
    post_i = rng.integers(0, len(c["act_post"]), n)
    post, post_s = _obj(c["act_post"])[post_i], _obj(_slug(a) for a in c["act_post"])[post_i]
    if c["act_pre"]:
        pre_i = rng.integers(0, len(c["act_pre"]), n)
        pre, pre_s = _obj(c["act_pre"])[pre_i], _obj(_slug(a) for a in c["act_pre"])[pre_i]
    else:  # British names put the trade after the surname
        pre, pre_s = None, None
    head = rng.integers(0, len(BRAND_HEAD), n)
    tail = rng.integers(0, len(BRAND_TAIL), n)
    brand = _obj(BRAND_HEAD)[head] + _obj(BRAND_TAIL)[tail]
    brand_s = _obj(h.lower() for h in BRAND_HEAD)[head] + _obj(BRAND_TAIL)[tail]
    sons_s, partners_s = _slug(c["sons"]), _slug(c["partners"])

    variants = [  # (display, slug)
        (
            (pre + " " + s1 + " " + form) if pre is not None else (s1 + " " + post + " " + form),
            (pre_s + "-" + s1s) if pre is not None else (s1s + "-" + post_s),
        ),
        (brand + " " + form, brand_s),
        (s1 + " " + c["sons"] + " " + form, s1s + "-" + sons_s),
        (s1 + ", " + s2 + " " + c["partners"], s1s + "-" + s2s + "-" + partners_s),
        (s1 + " " + post + " " + form, s1s + "-" + post_s),
    ]
    which = rng.choice(len(variants), size=n, p=[0.34, 0.2, 0.1, 0.1, 0.26])
    name = np.empty(n, dtype=object)
    slug = np.empty(n, dtype=object)
    for k, (disp, sl) in enumerate(variants):
        m = which == k
        name[m] = disp[m]
        slug[m] = sl[m]
    return name, slug


def _person_names(rng, cc: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = COUNTRY[cc]
    fi = rng.integers(0, len(c["first"]), n)
    li = rng.integers(0, len(c["surnames"]), n)
    first, last = _obj(c["first"])[fi], _obj(c["surnames"])[li]
    first_s = _obj(_slug(x) for x in c["first"])[fi]
    last_s = _obj(_slug(x) for x in c["surnames"])[li]
    return first + " " + last, first_s, last_s


def _addresses(rng, cc: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    num = rng.integers(1, 180, n)
    num = np.where(rng.random(n) < 0.6, rng.integers(1, 40, n), num)  # small numbers are commoner
    num_s = _int_str(num)
    if cc == "FR":
        bis = _pick(rng, ["", " bis", " ter"], n, [0.93, 0.05, 0.02])
        street = (
            num_s
            + bis
            + " "
            + _pick(rng, FR_STREET_TYPES[0], n, FR_STREET_TYPES[1])
            + " "
            + _pick(rng, FR_STREET_NAMES, n)
        )
        comp = rng.random(n) < 0.1
        street[comp] = _pick(rng, FR_COMPLEMENTS, int(comp.sum())) + street[comp]
        cities = FR_CITIES
    elif cc == "BE":
        street = _pick(rng, BE_STREETS, n) + " " + num_s
        box = rng.random(n) < 0.1
        street[box] = street[box] + " bte " + _int_str(rng.integers(1, 20, int(box.sum())))
        cities = BE_CITIES
    elif cc == "DE":
        letter = _pick(rng, ["", "a", "b"], n, [0.9, 0.07, 0.03])
        street = _pick(rng, DE_STREETS, n) + " " + num_s + letter
        cities = DE_CITIES
    else:
        street = (
            num_s + " " + _pick(rng, GB_STREET_NAMES, n) + " " + _pick(rng, GB_STREET_TYPES[0], n, GB_STREET_TYPES[1])
        )
        comp = rng.random(n) < 0.1
        street[comp] = (
            _pick(rng, GB_COMPLEMENTS, int(comp.sum())) + _pick(rng, GB_STREET_NAMES, int(comp.sum())) + " Road"
        )
        w = np.array([c[2] for c in GB_CITIES], dtype=float)
        ci = rng.choice(len(GB_CITIES), size=n, p=w / w.sum())
        city = _obj(c[0] for c in GB_CITIES)[ci]
        outward = np.empty(n, dtype=object)
        for k, (_, codes, _) in enumerate(GB_CITIES):
            m = ci == k
            outward[m] = _pick(rng, codes, int(m.sum()))
        postal = (
            outward
            + " "
            + _int_str(rng.integers(1, 10, n))
            + GB_INWARD_LETTERS[rng.integers(0, 20, n)]
            + GB_INWARD_LETTERS[rng.integers(0, 20, n)]
        )
        return street, postal, city
    w = np.array([c[3] for c in cities], dtype=float)
    ci = rng.choice(len(cities), size=n, p=w / w.sum())
    city = _obj(c[0] for c in cities)[ci]
    base = np.array([c[1] for c in cities])[ci]
    span = np.array([c[2] for c in cities])[ci]
    code = base + (rng.random(n) * span).astype(np.int64)
    width = 4 if cc == "BE" else 5
    postal = np.char.zfill(code.astype(str), width).astype(object) if n else np.empty(0, dtype=object)
    return street, postal, city


def _phones(rng, cc: str, n: int, mobile: np.ndarray) -> np.ndarray:
    fixed, mob = PHONES[cc]
    out = np.empty(n, dtype=object)
    for pool, mask in ((fixed, ~mobile), (mob, mobile)):
        idx = np.flatnonzero(mask)
        choice = rng.integers(0, len(pool), len(idx))
        for k, (prefix, width) in enumerate(pool):
            sel = idx[choice == k]
            out[sel] = prefix + _digits(rng, len(sel), width)
    return out


def _customers(rng, n: int) -> dict:
    countries, shares = COUNTRY_SHARES
    country = _obj(countries)[rng.choice(len(countries), size=n, p=shares)]
    b2b = rng.random(n) < 0.85
    name = np.empty(n, dtype=object)
    email = np.empty(n, dtype=object)
    phone = np.empty(n, dtype=object)
    street = np.empty(n, dtype=object)
    postal = np.empty(n, dtype=object)
    city = np.empty(n, dtype=object)
    collector = np.full(n, None, dtype=object)
    language = np.where(np.isin(country, ["FR", "BE"]), "fr", "en").astype(object)
    for cc in countries:
        cm = country == cc
        for is_b2b in (True, False):
            idx = np.flatnonzero(cm & (b2b == is_b2b))
            k = len(idx)
            if is_b2b:
                nm, slug = _company_names(rng, cc, k)
                local = _pick(rng, COUNTRY[cc]["mail"], k)
                em = local + "@" + slug + ".example"
                mobile = rng.random(k) < 0.2
                has_coll = rng.random(k) < 0.9
                coll = _pick(rng, COLLECTORS[cc], k)
                collector[idx[has_coll]] = coll[has_coll]
            else:
                nm, fs, ls = _person_names(rng, cc, k)
                suffix = np.where(rng.random(k) < 0.4, _int_str(rng.integers(1, 99, k)), "").astype(object)
                em = fs + "." + ls + suffix + "@" + _pick(rng, ["example.com", "example.net", "example.org"], k)
                mobile = rng.random(k) < 0.85
            name[idx] = nm
            email[idx] = em
            phone[idx] = _phones(rng, cc, k, mobile)
            st, pc_, ct = _addresses(rng, cc, k)
            street[idx], postal[idx], city[idx] = st, pc_, ct
        if cc == "BE":
            some_en = cm & (rng.random(n) < 0.2)
            language[some_en] = "en"
    no_email = rng.random(n) < 0.10
    no_phone = rng.random(n) < 0.20
    no_addr = rng.random(n) < 0.025
    nothing = rng.random(n) < 0.005  # no way to reach them at all: "undeliverable"
    no_email |= nothing
    no_phone |= nothing
    no_addr |= nothing
    email[no_email] = None
    phone[no_phone] = None
    street[no_addr] = None
    postal[no_addr] = None
    city[no_addr] = None
    blocked = rng.random(n) < 0.02
    behaviour = np.where(
        b2b,
        rng.choice(5, size=n, p=[0.45, 0.30, 0.10, 0.10, 0.05]),
        rng.choice(5, size=n, p=[0.55, 0.25, 0.08, 0.0, 0.12]),
    )
    return dict(
        country=country,
        b2b=b2b,
        name=name,
        email=email,
        phone=phone,
        street=street,
        postal_code=postal,
        city=city,
        language=language,
        collector=collector,
        blocked=blocked,
        behaviour=behaviour,
    )


def _segments_and_tags(rng, cust: dict) -> None:
    """Public buyers (about 5 % of the French companies, "Mairie de <city>") and key accounts (about
    4 % of the other companies, tag `key_account`), from a generator of their own: the main draws
    stay as they were. Invoices and payments follow the b2b laws for both."""
    n = len(cust["b2b"])
    public = cust["b2b"] & (cust["country"] == "FR") & (rng.random(n) < 0.05)
    key = cust["b2b"] & ~public & (rng.random(n) < 0.04)
    segment = np.where(cust["b2b"], "b2b", "b2c").astype(object)
    segment[public] = "public"
    for i in np.flatnonzero(public & (cust["city"] != None)):  # noqa: E711 (numpy object array)
        cust["name"][i] = f"Mairie de {cust['city'][i]}"
    tags = np.full(n, None, dtype=object)
    tags[key] = "key_account"
    cust["segment"], cust["tags"] = segment, tags


# --------------------------------------------------------------------------------------------
# Invoices
# --------------------------------------------------------------------------------------------


def _invoices(rng, cust: dict, n: int, as_of_d: int, window: int) -> dict:
    b2b = cust["b2b"]
    # How many invoices: gamma-Poisson, b2b about 2.4 times b2c; about 10 per customer once the
    # shorter active periods below are taken into account.
    lam = rng.gamma(2.0, np.where(b2b, 13.1, 5.5) / 2.0)
    # Active period within the window (offsets in days before as_of): some start late, some stop early.
    lo = np.zeros(n)
    hi = np.full(n, float(window))
    late_start = rng.random(n) < 0.2
    hi[late_start] = rng.uniform(0.05, 1.0, int(late_start.sum())) * window
    churned = ~late_start & (rng.random(n) < 0.1)
    lo[churned] = rng.uniform(0.0, 0.8, int(churned.sum())) * window
    # A customer who never pays is not delivered for long: two to four months of invoices.
    never = cust["behaviour"] == NEVER
    span = rng.uniform(60, 120, n)
    lo[never] = rng.uniform(0.0, 1.0, int(never.sum())) * np.maximum(hi[never] - span[never], 0)
    hi[never] = np.minimum(lo[never] + span[never], hi[never])
    count = rng.poisson(lam * (hi - lo) / window)
    c = np.repeat(np.arange(n, dtype=np.int64), count)
    total = len(c)

    # Issue dates (business days) in (window_start, as_of].
    off = np.minimum((lo[c] + rng.random(total) * (hi[c] - lo[c])).astype(np.int64), window - 1)
    issue = as_of_d - off
    back = _to_weekday(issue, True)
    issue = np.where(back > as_of_d - window, back, _to_weekday(issue, False))

    is_cn = rng.random(total) < 0.03

    # Terms: one usual term per customer (b2c: 30), sometimes another one.
    cust_term = np.where(b2b, TERMS[rng.choice(3, size=n, p=[0.6, 0.25, 0.15])], 30)
    term = cust_term[c]
    other = rng.random(total) < 0.08
    term[other] = TERMS[rng.integers(0, 3, int(other.sum()))]
    term[is_cn] = 0  # a credit note is due on its issue date
    due = issue + term

    # Amounts in integer cents: a customer scale times an invoice spread (log-normal).
    scale = np.where(b2b, np.exp(rng.normal(np.log(900.0), 0.8, n)), np.exp(rng.normal(np.log(90.0), 0.5, n)))
    spread = np.where(b2b[c], rng.normal(0.0, 0.6, total), rng.normal(0.0, 0.45, total))
    value = scale[c] * np.exp(spread)
    value = np.where(is_cn, value * rng.uniform(0.04, 0.35, total), value)
    cents = np.rint(value * 100).astype(np.int64)
    round_units = b2b[c] & ~is_cn & (rng.random(total) < 0.2)  # services billed in whole units
    cents[round_units] = np.rint(cents[round_units] / 100).astype(np.int64) * 100
    cents = np.where(is_cn, np.clip(cents, 100, 5_000_000), np.clip(cents, 500, 50_000_000))

    # Currency: EUR; GBP for most British customers; a second currency for a few companies.
    gb = cust["country"] == "GB"
    primary = np.where(gb & (rng.random(n) < 0.85), GBP, EUR)
    second = np.where(primary == GBP, EUR, np.where(rng.random(n) < 0.5, USD, GBP))
    two = b2b & (rng.random(n) < 0.015)
    cur = primary[c]
    use_second = two[c] & (rng.random(total) < 0.3)
    cur[use_second] = second[c][use_second]

    # File order: by issue date, then at random; numbers run per kind and year in that order.
    order = np.lexsort((rng.random(total), issue))
    inv = dict(
        cust=c[order],
        issue=issue[order],
        due=due[order],
        cents=cents[order],
        cur=cur[order],
        is_cn=is_cn[order],
        term=term[order],
    )
    year = inv["issue"].astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    seq = np.zeros(total, dtype=np.int64)
    for kind in (False, True):
        idx = np.flatnonzero(inv["is_cn"] == kind)
        y = year[idx]
        seq[idx] = np.arange(len(idx)) - np.searchsorted(y, y, side="left") + 1
    inv["year"], inv["seq"] = year, seq
    return inv


# --------------------------------------------------------------------------------------------
# Payments
# --------------------------------------------------------------------------------------------


def _payments(rng, cust: dict, inv: dict, n: int, as_of_d: int) -> tuple[dict, np.ndarray]:
    """Payments and, per invoice row, whether something settled it by as_of."""
    beh = cust["behaviour"]
    late_mean = rng.uniform(8, 60, n)  # a late payer's usual delay
    total = len(inv["cust"])
    c, due, issue, cents, cur, is_cn = inv["cust"], inv["due"], inv["issue"], inv["cents"], inv["cur"], inv["is_cn"]
    b = beh[c]

    # Outcome of each invoice: 0 on time, 1 late, 2 partial, 3 unpaid, 4 in an on-account lump sum.
    u = rng.random(total)
    cum = np.array(
        [
            [0.87, 0.985, 0.985, 1.00],  # on time: a few late, a few forgotten
            [0.05, 0.97, 0.97, 1.00],  # late
            [0.15, 0.45, 0.90, 1.00],  # partial
            [0.00, 0.10, 0.10, 0.10],  # on account: mostly lump sums (outcome 4)
            [0.00, 0.03, 0.03, 1.00],  # never pays (nearly)
        ]
    )[b]
    outcome = np.where(
        u < cum[:, 0], 0, np.where(u < cum[:, 1], 1, np.where(u < cum[:, 2], 2, np.where(u < cum[:, 3], 3, 4)))
    )
    outcome[is_cn] = -1

    # Many credit notes are deducted from the payment of the unit's next invoice falling due.
    deduct = np.zeros(total, dtype=np.int64)
    unit = c * 3 + cur
    inv_rows = np.flatnonzero(~is_cn)
    inv_key = unit[inv_rows] * 100_000 + due[inv_rows]
    by_key = np.argsort(inv_key, kind="stable")
    inv_rows, inv_key = inv_rows[by_key], inv_key[by_key]
    cn_rows = np.flatnonzero(is_cn & (beh[c] != ON_ACCOUNT) & (rng.random(total) < 0.7))
    pos = np.searchsorted(inv_key, unit[cn_rows] * 100_000 + issue[cn_rows], side="left")
    ok = pos < len(inv_rows)
    cn_rows, pos = cn_rows[ok], pos[ok]
    target = inv_rows[pos]
    ok = (
        (unit[target] == unit[cn_rows])
        & (outcome[target] >= 0)
        & (outcome[target] <= 1)
        & (cents[target] > cents[cn_rows])
    )
    cn_rows, target = cn_rows[ok], target[ok]
    target, first_cn = np.unique(target, return_index=True)
    deduct[target] = cents[cn_rows[first_cn]]

    parts = []  # (invoice row or -1, customer, currency, paid day, cents, backward weekend shift)

    def add(rows, cust_ids, curr, days, amounts, backward):
        parts.append((rows, cust_ids, curr, days, amounts, np.broadcast_to(backward, len(rows))))

    # On time: at the due date or up to 10 days before.
    r = np.flatnonzero(outcome == 0)
    early = np.where(rng.random(len(r)) < 0.3, 0, rng.integers(0, 11, len(r)))
    add(r, c[r], cur[r], due[r] - np.minimum(early, inv["term"][r] - 1), cents[r] - deduct[r], True)
    full_rows = [r]
    # Late: 5-90 days after due (late payers around their usual delay; others a little late).
    r = np.flatnonzero(outcome == 1)
    habitual = b[r] == LATE
    delay = np.where(
        habitual,
        np.rint(late_mean[c[r]] + rng.normal(0, 10, len(r))),
        rng.integers(5, 35, len(r)),
    )
    add(r, c[r], cur[r], due[r] + np.clip(delay, 5, 90).astype(np.int64), cents[r] - deduct[r], False)
    full_rows.append(r)
    # Partial: a fraction first, the rest later for about half of them.
    r = np.flatnonzero(outcome == 2)
    frac = rng.uniform(0.2, 0.8, len(r))
    first = np.clip(np.floor(cents[r] * frac / 100).astype(np.int64) * 100, 100, None)
    first = np.where(first >= cents[r], cents[r] // 2, first)
    first_day = np.maximum(due[r] + rng.integers(-5, 31, len(r)), issue[r])
    add(r, c[r], cur[r], first_day, first, False)
    rest = rng.random(len(r)) < 0.6
    rr = r[rest]
    add(rr, c[rr], cur[rr], first_day[rest] + rng.integers(15, 76, len(rr)), cents[rr] - first[rest], False)

    # Overpayments: a few full payments made twice, or rounded up.
    full = np.concatenate(full_rows)
    dup = full[rng.random(len(full)) < 0.004]
    add(dup, c[dup], cur[dup], due[dup] + rng.integers(3, 31, len(dup)), cents[dup], False)
    # (rounded-up amounts are applied below on the first payments of some invoices)

    # On account: monthly lump sums, net of credit notes, no invoice named.
    acct = (beh[c] == ON_ACCOUNT) & ((outcome == 4) | is_cn)
    lump_rows = np.flatnonzero(acct)
    phase = rng.integers(0, 30, n)
    lag = rng.integers(0, 26, n)
    round_down = rng.random(n) < 0.5
    period = (due[lump_rows] + phase[c[lump_rows]]) // 30
    key = (c[lump_rows] * 3 + cur[lump_rows]) * 100_000 + period
    order = np.argsort(key, kind="stable")
    lump_rows, key = lump_rows[order], key[order]
    starts = _group_starts(key)
    lump_paid_rows = np.zeros(0, dtype=np.int64)
    if len(starts):
        signed = np.where(is_cn[lump_rows], -cents[lump_rows], cents[lump_rows])
        amount = np.add.reduceat(signed, starts)
        last_due = np.maximum.reduceat(due[lump_rows], starts)
        g_cust = c[lump_rows[starts]]
        g_cur = cur[lump_rows[starts]]
        amount = np.where(round_down[g_cust] & (amount > 20_000), amount // 10_000 * 10_000, amount)
        day = last_due + lag[g_cust] + rng.integers(0, 6, len(starts))
        paid = (amount > 0) & (rng.random(len(starts)) < 0.92)
        g = np.flatnonzero(paid)
        add(np.full(len(g), -1, dtype=np.int64), g_cust[g], g_cur[g], day[g], amount[g], False)
        group_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(lump_rows)]))
        in_time = paid & (_to_weekday(day, False) <= as_of_d)
        lump_paid_rows = lump_rows[in_time[group_of] & ~is_cn[lump_rows]]

    rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
    pcust = np.concatenate([p[1] for p in parts]).astype(np.int64)
    pcur = np.concatenate([p[2] for p in parts]).astype(np.int64)
    day = np.concatenate([p[3] for p in parts]).astype(np.int64)
    amount = np.concatenate([p[4] for p in parts]).astype(np.int64)
    backward = np.concatenate([p[5] for p in parts]).astype(bool)
    day = _to_weekday(day, backward)

    # Rounded-up payments (an excess of 10 to 20 units) on a few payments naming an invoice.
    up = (rows >= 0) & (rng.random(len(rows)) < 0.004)
    amount[up] = (amount[up] // 1000 + 2) * 1000

    keep = day <= as_of_d
    rows, pcust, pcur, day, amount = rows[keep], pcust[keep], pcur[keep], day[keep], amount[keep]
    order = np.lexsort((rng.random(len(day)), day))
    pay = dict(inv_row=rows[order], cust=pcust[order], cur=pcur[order], day=day[order], cents=amount[order])

    settled = np.zeros(total, dtype=bool)
    settled[pay["inv_row"][pay["inv_row"] >= 0]] = True
    settled[lump_paid_rows] = True
    return pay, settled


# --------------------------------------------------------------------------------------------
# Holds
# --------------------------------------------------------------------------------------------

HOLD_KINDS = np.array(["dispute", "promise", "payment_plan", "legal", "other"], dtype=object)
DISPUTE, PROMISE, PLAN, LEGAL, OTHER = range(5)


def _holds(rng, inv: dict, settled: np.ndarray, n: int, as_of_d: int) -> dict:
    has_invoice = np.bincount(inv["cust"][~inv["is_cn"]], minlength=n) > 0
    holders = np.flatnonzero(has_invoice & (rng.random(n) < 0.045))
    second = holders[rng.random(len(holders)) < 0.2]
    hc = np.concatenate([holders, second])
    rank = np.concatenate([np.zeros(len(holders), np.int64), np.ones(len(second), np.int64)])
    k = len(hc)
    kind = rng.choice(5, size=k, p=[0.40, 0.25, 0.22, 0.06, 0.07])
    at_invoice = (
        (kind == DISPUTE) | ((kind == PROMISE) & (rng.random(k) < 0.3)) | ((kind == OTHER) & (rng.random(k) < 0.5))
    )

    # Candidate invoices per customer: unsettled ones first, then at random.
    cand = np.flatnonzero(~inv["is_cn"])
    cand = cand[np.lexsort((rng.random(len(cand)), settled[cand], inv["cust"][cand]))]
    cand_cust = inv["cust"][cand]
    first = np.searchsorted(cand_cust, hc, side="left")
    count = np.searchsorted(cand_cust, hc, side="right") - first
    if len(cand):
        row = np.where(count > 0, cand[np.minimum(first + np.minimum(rank, count - 1), len(cand) - 1)], -1)
    else:
        row = np.full(k, -1, dtype=np.int64)
    row = np.where(at_invoice, row, -1)

    start = np.empty(k, dtype=np.int64)
    end = np.full(k, -1, dtype=np.int64)  # -1: open-ended
    r = row.clip(0)
    inv_issue, inv_due = inv["issue"][r], inv["due"][r]

    m = kind == DISPUTE
    start[m] = np.clip(inv_due[m] + rng.integers(-10, 31, m.sum()), inv_issue[m], as_of_d)
    ended = m & (rng.random(k) < 0.5)
    end[ended] = start[ended] + rng.integers(7, 91, ended.sum())

    m = kind == PROMISE
    start[m] = as_of_d - rng.integers(0, 46, m.sum())
    future = m & (rng.random(k) < 0.05)
    start[future] = as_of_d + rng.integers(1, 11, future.sum())
    start[m & at_invoice] = np.maximum(start[m & at_invoice], inv_issue[m & at_invoice])
    end[m] = start[m] + rng.integers(3, 15, m.sum())

    m = kind == PLAN
    start[m] = as_of_d - rng.integers(0, 201, m.sum())
    future = m & (rng.random(k) < 0.05)
    start[future] = as_of_d + rng.integers(1, 31, future.sum())
    bounded = m & (rng.random(k) < 0.85)
    end[bounded] = start[bounded] + rng.integers(60, 241, bounded.sum())

    m = kind == LEGAL
    start[m] = as_of_d - rng.integers(0, 366, m.sum())
    bounded = m & (rng.random(k) < 0.2)
    end[bounded] = start[bounded] + rng.integers(30, 181, bounded.sum())

    m = kind == OTHER
    start[m] = as_of_d - rng.integers(0, 91, m.sum())
    start[m & at_invoice] = np.maximum(start[m & at_invoice], inv_issue[m & at_invoice])
    bounded = m & (rng.random(k) < 0.5)
    end[bounded] = start[bounded] + rng.integers(7, 61, bounded.sum())

    order = np.lexsort((rng.random(k), start))
    return dict(cust=hc[order], inv_row=row[order], kind=kind[order], start=start[order], end=end[order])


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _width(count: int, minimum: int) -> int:
    return max(minimum, len(str(max(count, 1))))


def _tables(cust: dict, inv: dict, pay: dict, holds: dict, n: int) -> dict[str, pa.Table]:
    cw = _width(n, 6)
    customer_id = _arrow_ids("C", np.arange(1, n + 1), cw)

    def s(values) -> pa.Array:
        return pa.array(values, type=pa.string())

    customers = pa.table(
        {
            "customer_id": customer_id,
            "name": s(cust["name"]),
            "email": s(cust["email"]),
            "phone": s(cust["phone"]),
            "street": s(cust["street"]),
            "postal_code": s(cust["postal_code"]),
            "city": s(cust["city"]),
            "country": s(cust["country"]),
            "language": s(cust["language"]),
            "segment": s(cust["segment"]),
            "dunning_block": s(np.where(cust["blocked"], "true", "false").astype(object)),
            "collector": s(cust["collector"]),
            "tags": s(cust["tags"]),
        }
    )

    total = len(inv["cust"])
    iw = _width(int(inv["seq"].max()) if total else 0, 6)
    prefix = pc.binary_join_element_wise(
        pc.if_else(pa.array(inv["is_cn"]), "CN-", "INV-"),
        pc.cast(pa.array(inv["year"]), pa.string()),
        "",
    )
    invoice_id = _arrow_ids(pc.binary_join_element_wise(prefix, "-", ""), inv["seq"], iw)
    currency = CURRENCIES
    invoices = pa.table(
        {
            "invoice_id": invoice_id,
            "customer_id": customer_id.take(pa.array(inv["cust"])),
            "kind": pc.if_else(pa.array(inv["is_cn"]), "credit_note", "invoice"),
            "issue_date": _arrow_dates(inv["issue"]),
            "due_date": _arrow_dates(inv["due"]),
            "amount": _arrow_amounts(inv["cents"]),
            "currency": s(currency[inv["cur"]]),
        }
    )

    npay = len(pay["day"])
    pay_inv = pa.array(pay["inv_row"], mask=pay["inv_row"] < 0)
    payments = pa.table(
        {
            "payment_id": _arrow_ids("PAY-", np.arange(1, npay + 1), _width(npay, 7)),
            "customer_id": customer_id.take(pa.array(pay["cust"])),
            "invoice_id": invoice_id.take(pay_inv),
            "paid_date": _arrow_dates(pay["day"]),
            "amount": _arrow_amounts(pay["cents"]),
            "currency": s(currency[pay["cur"]]),
        }
    )

    nh = len(holds["cust"])
    end = _arrow_dates(np.where(holds["end"] < 0, 0, holds["end"]))
    holds_t = pa.table(
        {
            "hold_id": _arrow_ids("H-", np.arange(1, nh + 1), _width(nh, 5)),
            "customer_id": customer_id.take(pa.array(holds["cust"])),
            "invoice_id": invoice_id.take(pa.array(holds["inv_row"], mask=holds["inv_row"] < 0)),
            "kind": s(HOLD_KINDS[holds["kind"]]),
            "start_date": _arrow_dates(holds["start"]),
            "end_date": pc.if_else(pa.array(holds["end"] < 0), pa.scalar(None, pa.string()), end),
        }
    )
    tables = {"customers": customers, "invoices": invoices, "payments": payments, "holds": holds_t}
    for entity, table in tables.items():
        assert tuple(table.column_names) == COLUMNS[entity], entity
    return tables


def _write(tables: dict[str, pa.Table], out: Path, fmt: str) -> None:
    import duckdb
    import pyarrow.parquet as pq

    other = "parquet" if fmt == "csv" else "csv"
    con = duckdb.connect(":memory:")
    try:
        con.execute("set preserve_insertion_order = true")
        for entity in ENTITIES:
            table = tables[entity]
            target = out / f"{entity}.{fmt}"
            tmp = out / f".{entity}.{fmt}.tmp"
            if fmt == "csv":
                con.register("sample_table", table)
                path = str(tmp).replace("'", "''")
                con.execute(f"copy sample_table to '{path}' (format csv, header true, delimiter ',', quote '\"')")
                con.unregister("sample_table")
            else:
                pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, target)
            stale = out / f"{entity}.{other}"
            if stale.exists():
                stale.unlink()
    finally:
        con.close()


def generate(out: Path, *, customers: int, seed: int, as_of: date, fmt: str = "csv") -> dict[str, int]:
    """Write customers, invoices, payments and holds for `customers` customers into `out`.

    Deterministic: the same (customers, seed, as_of, fmt) gives byte-identical files. Returns the
    rows written per entity.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"format {fmt!r}: expected csv or parquet")
    if customers < 1:
        raise ValueError("customers must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    as_of_d = (as_of - EPOCH).days
    window = (as_of - window_start(as_of)).days

    cust = _customers(rng, customers)
    _segments_and_tags(np.random.default_rng([seed, 16]), cust)
    inv = _invoices(rng, cust, customers, as_of_d, window)
    pay, settled = _payments(rng, cust, inv, customers, as_of_d)
    holds = _holds(rng, inv, settled, customers, as_of_d)
    tables = _tables(cust, inv, pay, holds, customers)
    _write(tables, out, fmt)
    return {entity: tables[entity].num_rows for entity in ENTITIES}
