"""Deterministic generator of long-context multi-hop QA about fictional people, places and organisations.

Introduced in notebook 01, it makes the bundled sample data (`data/sample`). Every sample is a
document of clause-rich, encyclopedia-style paragraphs about an invented world, so that a model's
world knowledge cannot answer the question: only the evidence sentences, placed in distant
paragraphs, can. Distractors are the other facts of the same world (other facts about the same
entities, the same relations for other entities) and colour sentences that mention the same names
without stating anything the question depends on. Each fact of the world is stated at most once,
so no distractor contradicts the evidence.

Names come from one of two disjoint pools: "main" (the bundled data) and "warmstart" (kept free for
the warm-start fine-tuning split). `python -m longmab_utils.synthetic --out data/sample` regenerates
the bundled files byte for byte.

Lengths are counted without a tokenizer: `approx_tokens(text) = round(len(text) / 4)`, about four
characters per token for English prose. All randomness comes from `random.Random` instances seeded
from (pool, seed, sample index); nothing depends on the global RNG, on `hash()` or on set order.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .data import write_jsonl

POOLS = ("main", "warmstart")
QUESTION_TYPES = ("lookup", "bridge", "comparison")
BUNDLED_TARGET_TOKENS = (1000, 1950)  # the last sentence may overshoot by < 50, so contexts stay within 1000-2000
TINY_TARGET_TOKENS = (350, 560)  # the cpu-tiny set: contexts within 350-610
LONG_TARGET_TOKENS = (8000, 11200)  # the GPU profiles' set: 8.3k-12k SmolLM2 tokens, at least 6 chunks of 1,500
CHARS_PER_TOKEN = 4
MAX_HOPS = 3

_TAILS = {
    "first": ("ela", "ina", "an", "ric", "ona", "ek", "isa", "o"),
    "last": ("osk", "ane", "ering", "ov", "al", "uin", "ecki", "holm"),
    "city": ("bridge", "holt", "mere", "ford", "wick", "stead", "haven", "moor", "dale", "by", "thorpe", "minster"),
}
# Every name of a pool starts with one of the pool's initials (main: A B D E F K M P Q T V;
# warmstart: C G H I L N O R S Z), so the two pools are disjoint by construction.
_HEADS = {
    "main": {
        "first": ("Ad", "Bel", "Dar", "Ev", "Fen", "Kal", "Mir", "Pet", "Tam", "Vel", "Ben", "Mar"),
        "last": ("Vant", "Kest", "Dorm", "Brav", "Tolm", "Fask", "Mord", "Prel", "Amst", "Ebr", "Kavr", "Tesh"),
        "city": (
            "Quel",
            "Arv",
            "Besk",
            "Drav",
            "Fyl",
            "Kor",
            "Mav",
            "Pell",
            "Tav",
            "Vor",
            "Eld",
            "Dun",
            "Marr",
            "Brisk",
        ),
    },
    "warmstart": {
        "first": ("Cal", "Ger", "Hal", "Il", "Lin", "Nor", "Ol", "Ros", "Sel", "Zan", "Lor", "Gav"),
        "last": ("Crav", "Gelm", "Hask", "Ingr", "Lutt", "Norv", "Ost", "Rusk", "Sarn", "Zell", "Grod", "Helv"),
        "city": (
            "Carn",
            "Glim",
            "Harv",
            "Istr",
            "Lunt",
            "Nesk",
            "Orv",
            "Rold",
            "Sabr",
            "Zenn",
            "Corr",
            "Hesk",
            "Ilm",
            "Gorm",
        ),
    },
}
_NAMES = {
    pool: {part: tuple(h + t for h in heads[part] for t in _TAILS[part] if h[-1] != t[0]) for part in _TAILS}
    for pool, heads in _HEADS.items()
}
_ORG_STEMS = {
    "main": (
        "Kelmar",
        "Varrow",
        "Davent",
        "Pellin",
        "Tarsk",
        "Morvane",
        "Benthal",
        "Fallisk",
        "Audrin",
        "Embrel",
        "Voskin",
        "Quarrin",
        "Kettrow",
        "Parnow",
        "Dovrin",
        "Madrek",
        "Treval",
        "Brannock",
    ),
    "warmstart": (
        "Corvel",
        "Gantrel",
        "Hollin",
        "Ilsmark",
        "Lorrick",
        "Nethan",
        "Orwen",
        "Ristel",
        "Sorvane",
        "Zarvic",
        "Caldrin",
        "Greavel",
        "Harvel",
        "Lindqvar",
        "Normer",
        "Oldwin",
        "Rathmor",
        "Selvin",
    ),
}
_ORG_KINDS = (
    "Foundry",
    "Press",
    "Glassworks",
    "Observatory",
    "Shipping Company",
    "Savings Bank",
    "Conservatory",
    "Clockworks",
    "Weaving Mill",
    "Ropeworks",
)
_RIVER_STEMS = {
    "main": (
        "Avel",
        "Brennet",
        "Dessa",
        "Fennick",
        "Kallun",
        "Mesk",
        "Pava",
        "Telm",
        "Vey",
        "Ambrel",
        "Drune",
        "Kessa",
        "Morvel",
        "Tiva",
    ),
    "warmstart": (
        "Carra",
        "Gelva",
        "Hune",
        "Issova",
        "Lornet",
        "Nessar",
        "Olva",
        "Rimsa",
        "Sella",
        "Zorn",
        "Corrin",
        "Gulla",
        "Harra",
        "Illa",
    ),
}
_INSTRUMENTS = ("cello", "oboe", "violin", "harp", "flute", "viola", "clarinet", "lute", "bassoon", "piano")
_JOBS = (
    "surveyor",
    "printer",
    "bookbinder",
    "cartographer",
    "botanist",
    "glassblower",
    "notary",
    "clockmaker",
    "pharmacist",
    "weaver",
)


@dataclass(frozen=True)
class _Relation:
    """A functional relation between entities (or an entity and a year) and how to state and ask it."""

    subject: str
    target: str
    question: str
    phrase: str | None
    templates: tuple[str, ...]


_RELATIONS = {
    "born_in": _Relation(
        "person",
        "city",
        "In which city was {x} born?",
        "the city where {x} was born",
        (
            "{s} was born in {v}, where the family kept a small bookbindery near the market square.",
            "According to the parish register, {s} was born in {v}; the house, although rebuilt, still stands.",
            "{v} is the birthplace of {s}, who, as the local histories note, never lost the accent of its lower town.",
            "{s}, whose earliest letters describe long walks along the quays, was born in {v}.",
            "Although most of a long life was spent elsewhere, {s} was born in {v} and returned there often.",
        ),
    ),
    "birth_year": _Relation(
        "person",
        "year",
        "In what year was {x} born?",
        None,
        (
            "{s} was born in {v}, the eldest of four children, and grew up in a house full of books.",
            "Records show that {s} was born in {v}, during a winter remembered for its storms.",
            "In {v}, the year a new bridge was begun downstream, {s} was born; the bridge took nine years to finish.",
            "{s}, born in {v}, was a quiet child who, according to a younger brother, read everything in sight.",
            "Born in {v}, {s} was raised by an aunt, a strict woman who, it is said, never once raised her voice.",
            "{s} came into the world in {v}, a year of poor harvests, and was baptised in the old chapel.",
        ),
    ),
    "works_for": _Relation(
        "person",
        "org",
        "Which organisation employed {x}?",
        "the organisation that employed {x}",
        (
            "{s} spent most of a long career at {v}, first as a clerk and later as the keeper of its archive.",
            "For nearly two decades {s} worked for {v}, and the reports written there, careful and dry, are still read.",
            "{s} joined {v} as a young apprentice and, despite several offers from rivals, never left.",
            "At {v}, which employed {s} for many years, colleagues remembered a patient, exacting manner.",
        ),
    ),
    "teacher": _Relation(
        "person",
        "person",
        "Who taught {x}?",
        "the teacher of {x}",
        (
            "{s} studied under {v}, whose lessons, strict but generous, shaped everything that followed.",
            "As a student, {s} was taught by {v}; the two kept up a correspondence for decades.",
            "{v} was the teacher of {s} and, by most accounts, the only one whose advice was ever taken.",
            "{s} learned the trade from {v}, who, although famously impatient, never turned a pupil away.",
        ),
    ),
    "city_founder": _Relation(
        "city",
        "person",
        "Who founded {x}?",
        "the founder of {x}",
        (
            "{s} was founded by {v}, who, having quarrelled with the guilds of the coast, led a few families inland.",
            "The founder of {s} was {v}; a weathered statue of the founder still stands by the old gate.",
            "{v} founded {s} on a bend of the valley, and, within a generation, the settlement had outgrown its walls.",
            "Local chronicles agree that {s} was established by {v}, although they disagree about almost everything else.",
        ),
    ),
    "city_year": _Relation(
        "city",
        "year",
        "In what year was {x} founded?",
        None,
        (
            "{s} was founded in {v}, and its first charter, granted soon afterwards, is kept in the town hall.",
            "The oldest houses of {s} date from {v}, the year of its founding; only a handful survive.",
            "Founded in {v}, {s} grew slowly at first, since the roads to it were poor and often flooded.",
            "{s}, whose founding in {v} is still celebrated each autumn, stayed little more than a village for a century.",
        ),
    ),
    "river": _Relation(
        "city",
        "river",
        "Which river flows through {x}?",
        None,
        (
            "{s} stands on {v}, which, in dry summers, can be crossed on foot below the mills.",
            "{v} flows through {s}, dividing the old town from the newer quarters on its eastern bank.",
            "{s} lies on {v}; its harbour, small but busy, once handled most of the valley's timber.",
        ),
    ),
    "org_founder": _Relation(
        "org",
        "person",
        "Who founded {x}?",
        "the founder of {x}",
        (
            "{s} was founded by {v}, who had, until then, run a modest workshop with two apprentices.",
            "{v} established {s} and, against the advice of almost everyone, insisted on hiring only local workers.",
            "It was {v} who founded {s}, borrowing the money from a cousin and repaying it, with interest, in five years.",
        ),
    ),
    "org_year": _Relation(
        "org",
        "year",
        "In what year was {x} founded?",
        None,
        (
            "{s} was founded in {v}; its first premises, a rented loft, burned down within a decade.",
            "Since its founding in {v}, {s} has changed hands three times, yet it has kept its original name.",
            "{s}, founded in {v}, began with a single room, a few tools, and a great deal of debt.",
        ),
    ),
    "headquarters": _Relation(
        "org",
        "city",
        "In which city does {x} have its headquarters?",
        "the city where {x} has its headquarters",
        (
            "{s} has its headquarters in {v}, in a brick building that, like much of the street, is older than it looks.",
            "The headquarters of {s} are in {v}, although much of its work is done in smaller workshops elsewhere.",
            "{s}, which is headquartered in {v}, employs several hundred people in good years.",
        ),
    ),
}
_YEAR_RELATION = {"person": "birth_year", "city": "city_year", "org": "org_year"}
_COMPARISONS = {
    "person": (("Who was born first, {a} or {b}?", min), ("Who was born later, {a} or {b}?", max)),
    "city": (("Which was founded earlier, {a} or {b}?", min), ("Which was founded later, {a} or {b}?", max)),
    "org": (("Which was founded earlier, {a} or {b}?", min), ("Which is the younger organisation, {a} or {b}?", max)),
}


@dataclass(frozen=True)
class _Colour:
    """A sentence that mentions entities without stating a fact a question can ask about."""

    template: str
    slots: tuple[tuple[str, str], ...]
    avoid: tuple[tuple[str, str, str], ...] = ()


_COLOURS = (
    _Colour(
        "In {y}, {p} travelled to {c} and stayed for a long, difficult winter, much of it spent indoors.",
        (("p", "person"), ("c", "city")),
        (("p", "born_in", "c"),),
    ),
    _Colour(
        "{p} gave a series of lectures in {c}; the hall, it was said, had never been so full.",
        (("p", "person"), ("c", "city")),
    ),
    _Colour(
        "{p} once described {c} as a town of bells and rain, and the phrase, to its council's annoyance, stuck.",
        (("p", "person"), ("c", "city")),
    ),
    _Colour(
        "A letter from {p}, sent from {c} and dated {y}, mentions the price of bread, the weather and little else.",
        (("p", "person"), ("c", "city")),
    ),
    _Colour(
        "{p} and {q} met in {c}, wrote to each other for years, and, despite many plans, never travelled together.",
        (("p", "person"), ("q", "person"), ("c", "city")),
    ),
    _Colour(
        "{p} admired the work of {q}, although the two disagreed, often loudly, about almost everything else.",
        (("p", "person"), ("q", "person")),
    ),
    _Colour(
        "{p} turned down an offer from {o}, preferring, as a friend put it, a smaller world.",
        (("p", "person"), ("o", "org")),
        (("p", "works_for", "o"), ("o", "org_founder", "p")),
    ),
    _Colour(
        "{p} wrote a short history of {o}, which, though never published, was copied by hand and passed around.",
        (("p", "person"), ("o", "org")),
    ),
    _Colour(
        "{p} played the {inst} well enough to perform in public, though only, it seems, for friends.",
        (("p", "person"),),
    ),
    _Colour(
        "Trained as a {job}, {p} kept meticulous notebooks; dozens of them, full of sketches and lists, survive.",
        (("p", "person"),),
    ),
    _Colour(
        "In {y}, {p} spent a summer in {c}, sketching the harbour, the bridges, and, above all, the people.",
        (("p", "person"), ("c", "city")),
        (("p", "born_in", "c"),),
    ),
    _Colour(
        "{p} never cared much for {c}, complaining that its streets were too steep and its winters too long.",
        (("p", "person"), ("c", "city")),
    ),
    _Colour(
        "Friends of {p} remembered evenings of music in {c}, where, as a rule, the {inst} came out after dinner.",
        (("p", "person"), ("c", "city")),
    ),
    _Colour(
        "{c} is known for its covered market, its narrow lanes, and a clock tower that has never kept time.",
        (("c", "city"),),
    ),
    _Colour(
        "The road from {c} to {d}, which follows the valley for most of its length, was paved only in {y}.",
        (("c", "city"), ("d", "city")),
    ),
    _Colour(
        "{c} and {d} have long been rivals; their markets, held on the same day, compete for the same buyers.",
        (("c", "city"), ("d", "city")),
    ),
    _Colour(
        "Barges from {c} once carried grain down to {r}, a journey of several days, longer in a dry year.",
        (("c", "city"), ("r", "river")),
        (("c", "river", "r"),),
    ),
    _Colour(
        "In {y}, a fire destroyed much of the lower town of {c}, although the stone houses by the square survived.",
        (("c", "city"),),
    ),
    _Colour(
        "Travellers who reach {c} in spring, when the orchards bloom, often stay longer than they planned.",
        (("c", "city"),),
    ),
    _Colour(
        "{o} opened a branch office in {c} in {y}, but, after a few unprofitable years, closed it again.",
        (("o", "org"), ("c", "city")),
        (("o", "headquarters", "c"),),
    ),
    _Colour(
        "{o} is best known for its ledgers, which record, in careful detail, every order it ever filled.",
        (("o", "org"),),
    ),
    _Colour(
        "In {y}, {o} nearly went bankrupt; a loan, arranged in haste and repaid slowly, saved it.", (("o", "org"),)
    ),
    _Colour(
        "Workers at {o} went on strike in {y}, demanding shorter hours, and, after six weeks, they won.",
        (("o", "org"),),
    ),
    _Colour(
        "{r} floods almost every spring, and the villages along it, having learned patience, build on stilts.",
        (("r", "river"),),
    ),
    _Colour(
        "Fishermen on {r} tell stories of a drowned bell, though nobody, as far as anyone knows, has heard it.",
        (("r", "river"),),
    ),
    _Colour(
        "In {y}, a hard winter froze {r} so thoroughly that carts, and even a small fair, crossed the ice.",
        (("r", "river"),),
    ),
)
_EVAL_SETS = (
    ("synth_bridge", 1, 2, ("bridge",)),
    ("synth_comparison", 2, 2, ("comparison",)),
    ("synth_lookup", 3, 1, ("lookup",)),
)


@dataclass
class _Entity:
    """A fictional person, city, organisation or river of one sample's world."""

    kind: str
    name: str
    label: str
    year: int = 0
    traits: dict[str, str] = field(default_factory=dict)


@dataclass
class _World:
    """The entities of one sample and its facts, keyed by (subject index, relation)."""

    entities: list[_Entity] = field(default_factory=list)
    facts: dict[tuple[int, str], int] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[int]:
        """Indices of the entities of one kind, in creation order."""
        return [i for i, entity in enumerate(self.entities) if entity.kind == kind]

    def value(self, subject: int, relation: str) -> str:
        """The fact's object as written in running text (an entity mention or a year)."""
        target = self.facts[(subject, relation)]
        return str(target) if _RELATIONS[relation].target == "year" else self.entities[target].name

    def answer(self, subject: int, relation: str) -> str:
        """The fact's object as a short answer (an entity label or a year)."""
        target = self.facts[(subject, relation)]
        return str(target) if _RELATIONS[relation].target == "year" else self.entities[target].label


@dataclass(frozen=True)
class _Sentence:
    """One sentence of the document: its paragraph's entity, the entities it names, the relation or template used."""

    text: str
    topic: int
    mentions: tuple[int, ...]
    source: str


class _Deck:
    """Deals each template list in a shuffled cycle, so a document repeats a wording only after using them all."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.piles: dict[tuple[str, ...], list[str]] = {}

    def deal(self, templates: tuple[str, ...]) -> str:
        """The next template of this list's current shuffled pass."""
        if not self.piles.get(templates):
            self.piles[templates] = self.rng.sample(templates, len(templates))
        return self.piles[templates].pop()


@dataclass(frozen=True)
class _Question:
    """A question, its answer, its type and the facts (subject, relation) needed to answer it."""

    text: str
    answer: str
    type: str
    facts: tuple[tuple[int, str], ...]


def approx_tokens(text: str) -> int:
    """Approximate token count of English text: round(len(text) / 4), no tokenizer needed."""
    return round(len(text) / CHARS_PER_TOKEN)


def pool_names(pool: str) -> list[str]:
    """Every proper-name word the pool can put in a sample (first names, surnames, places, organisations, rivers)."""
    _check_pool(pool)
    words = [name for names in _NAMES[pool].values() for name in names]
    return sorted(dict.fromkeys(words + list(_ORG_STEMS[pool]) + list(_RIVER_STEMS[pool])))


def _check_pool(pool: str) -> None:
    """Reject an unknown pool name."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")


def _capitalize(text: str) -> str:
    """Upper-case the first character only (so 'the Kelmar Press ...' starts a sentence properly)."""
    return text[:1].upper() + text[1:]


def _draw_name(taken: list[str], make: Callable[[], str]) -> str:
    """Draw a fresh name that is not a substring of, nor contains, any name already used in the sample."""
    for _ in range(1000):
        name = make()
        lowered = name.lower()
        if not any(lowered in other.lower() or other.lower() in lowered for other in taken):
            taken.append(name)
            return name
    raise RuntimeError("name pool exhausted")


def _add(world: _World, kind: str, name: str, year: int, label: str | None = None) -> int:
    """Append an entity to the world and return its index."""
    world.entities.append(_Entity(kind, name, label or name, year))
    return len(world.entities) - 1


def _add_person(world: _World, rng: random.Random, pool: str, taken: list[str], year: int) -> int:
    """Add a person born in `year`, sometimes sharing a surname with someone already in the world."""
    names = _NAMES[pool]
    family = [world.entities[i].name.split()[-1] for i in world.of_kind("person")]

    def make() -> str:
        first = rng.choice(names["first"])
        return f"{first} {rng.choice(family if family and rng.random() < 0.25 else names['last'])}"

    index = _add(world, "person", _draw_name(taken, make), year)
    world.entities[index].traits = {"inst": rng.choice(_INSTRUMENTS), "job": rng.choice(_JOBS)}
    return index


def _pick_birthplace(world: _World, rng: random.Random, person: int) -> None:
    """Give a person a birthplace among the cities founded before their birth, when there is one."""
    born = world.entities[person].year
    cities = [c for c in world.of_kind("city") if world.entities[c].year < born]
    if cities:
        world.facts[(person, "born_in")] = rng.choice(cities)


def _build_world(rng: random.Random, pool: str, target_tokens: int) -> _World:
    """Invent a world sized to the target length: cities, rivers, organisations, founders and other people."""
    n_cities = min(max(3, round(target_tokens / 350)), 40)
    river_names = rng.sample(_RIVER_STEMS[pool], max(2, (n_cities + 2) // 3))
    world, taken = _World(), list(river_names)
    rivers = [_add(world, "river", f"the River {name}", 0, f"River {name}") for name in river_names]
    for year in sorted(rng.sample(range(1150, 1750), n_cities)):
        name = _draw_name(taken, lambda: rng.choice(_NAMES[pool]["city"]))
        city = _add(world, "city", name, year)
        world.facts[(city, "river")] = rng.choice(rivers)
    for city in world.of_kind("city"):
        founder = _add_person(world, rng, pool, taken, world.entities[city].year - rng.randint(22, 58))
        world.facts[(city, "city_founder")] = founder
        if rng.random() < 0.7:
            _pick_birthplace(world, rng, founder)
    for year in sorted(rng.sample(range(1760, 1960), max(2, n_cities // 2))):
        stem = _draw_name(taken, lambda: f"{rng.choice(_ORG_STEMS[pool])} {rng.choice(_ORG_KINDS)}")
        org = _add(world, "org", f"the {stem}", year, stem)
        world.facts[(org, "headquarters")] = rng.choice(world.of_kind("city"))
        founder = _add_person(world, rng, pool, taken, year - rng.randint(25, 55))
        world.facts[(org, "org_founder")] = founder
        _pick_birthplace(world, rng, founder)
    for _ in range(max(3, n_cities)):
        person = _add_person(world, rng, pool, taken, rng.randint(1790, 1990))
        _pick_birthplace(world, rng, person)
        born = world.entities[person].year
        employers = [o for o in world.of_kind("org") if world.entities[o].year <= born + 40]
        if employers and rng.random() < 0.85:
            world.facts[(person, "works_for")] = rng.choice(employers)
        teachers = [q for q in world.of_kind("person") if 15 <= born - world.entities[q].year <= 45]
        if teachers and rng.random() < 0.7:
            world.facts[(person, "teacher")] = rng.choice(teachers)
    for person in world.of_kind("person"):
        world.facts[(person, "birth_year")] = world.entities[person].year
    for kind in ("city", "org"):
        for entity in world.of_kind(kind):
            world.facts[(entity, _YEAR_RELATION[kind])] = world.entities[entity].year
    return world


def _chains(world: _World, length: int, end_kind: str | None = None) -> list[tuple[tuple[int, str], ...]]:
    """Chains of `length` describable hops (no year or river) through distinct entities, ending on end_kind if given."""
    found = []

    def walk(entity: int, chain: tuple[tuple[int, str], ...], seen: tuple[int, ...]) -> None:
        if len(chain) == length:
            found.append(chain)
            return
        last = len(chain) + 1 == length
        for name, relation in _RELATIONS.items():
            if (entity, name) not in world.facts or relation.phrase is None:
                continue
            if last and end_kind is not None and relation.target != end_kind:
                continue
            target = world.facts[(entity, name)]
            if target not in seen:
                walk(target, chain + ((entity, name),), seen + (target,))

    for start in range(len(world.entities)):
        walk(start, (), (start,))
    return found


def _describe(world: _World, start: int, relations: Sequence[str]) -> str:
    """The noun phrase for the entity reached from `start` through `relations` ('the teacher of ...')."""
    phrase = world.entities[start].name
    for relation in relations:
        phrase = _RELATIONS[relation].phrase.format(x=phrase)
    return phrase


def _resolve(world: _World, chain: Sequence[tuple[int, str]], start: int) -> int:
    """The entity a chain of entity-valued facts leads to (the start itself for an empty chain)."""
    return world.facts[chain[-1]] if chain else start


def _bridge(world: _World, rng: random.Random, hops: int, kind: str) -> _Question | None:
    """A chain question: `hops` facts, each hop's answer the subject of the next (one fact for a lookup)."""
    prefixes = _chains(world, hops - 1) if hops > 1 else [()]
    options = []
    for prefix in prefixes:
        starts = [prefix[0][0]] if prefix else range(len(world.entities))
        for start in starts:
            subject = _resolve(world, prefix, start)
            seen = {start} | {world.facts[fact] for fact in prefix}
            for name, relation in _RELATIONS.items():
                fact = (subject, name)
                if fact in world.facts and (relation.target == "year" or world.facts[fact] not in seen):
                    options.append((start, prefix + (fact,)))
    if not options:
        return None
    start, chain = rng.choice(options)
    last = chain[-1][1]
    text = _RELATIONS[last].question.format(x=_describe(world, start, [relation for _, relation in chain[:-1]]))
    return _Question(text, world.answer(*chain[-1]), kind, chain)


def _comparison(world: _World, rng: random.Random, hops: int) -> _Question | None:
    """A question comparing the years of two entities of one kind; with 3 hops one side is reached by a bridge."""
    kind = rng.choice(sorted(_COMPARISONS))
    if hops == 2:
        sides = [((), start) for start in world.of_kind(kind)]
        pairs = [(a, b) for a in sides for b in sides if a[1] < b[1]]
    else:
        bridged = [(chain, chain[0][0]) for chain in _chains(world, hops - 2, kind)]
        direct = [((), start) for start in world.of_kind(kind)]
        pairs = [(a, b) for a in bridged for b in direct]
    year_of = {entity: world.entities[entity].year for entity in world.of_kind(kind)}
    usable = []
    for a, b in pairs:
        left, right = _resolve(world, a[0], a[1]), _resolve(world, b[0], b[1])
        on_chain = {a[1]} | {world.facts[fact] for fact in a[0]}
        if left != right and b[1] not in on_chain and year_of[left] != year_of[right]:
            usable.append((a, b))
    if not usable:
        return None
    pair = list(rng.choice(usable))
    rng.shuffle(pair)
    (chain_a, start_a), (chain_b, start_b) = pair
    template, pick = rng.choice(_COMPARISONS[kind])
    resolved = [_resolve(world, chain_a, start_a), _resolve(world, chain_b, start_b)]
    winner = pick(resolved, key=year_of.__getitem__)
    text = template.format(
        a=_describe(world, start_a, [r for _, r in chain_a]), b=_describe(world, start_b, [r for _, r in chain_b])
    )
    facts = chain_a + chain_b + tuple((entity, _YEAR_RELATION[kind]) for entity in resolved)
    return _Question(text, world.entities[winner].label, "comparison", facts)


def _fact_sentence(world: _World, deck: _Deck, fact: tuple[int, str]) -> _Sentence:
    """State one fact in the relation's next clause-rich template."""
    subject, relation = fact
    template = deck.deal(_RELATIONS[relation].templates)
    text = _capitalize(template.format(s=world.entities[subject].name, v=world.value(subject, relation)))
    mentions = (subject,) if _RELATIONS[relation].target == "year" else (subject, world.facts[fact])
    return _Sentence(text, subject, mentions, relation)


def _year_window(world: _World, entities: Sequence[int]) -> tuple[int, int]:
    """Years in which an event involving all these entities is plausible (adult lifetimes, after foundings)."""
    low, high = 1200, 2020
    for index in entities:
        entity = world.entities[index]
        if entity.kind == "person":
            low, high = max(low, entity.year + 18), min(high, entity.year + 70)
        elif entity.kind in ("city", "org"):
            low = max(low, entity.year + 1)
    return low, high


def _colour_sentence(world: _World, rng: random.Random, topic: int | None = None) -> _Sentence | None:
    """A colour sentence with random, plausible entities (the first slot bound to `topic` when given)."""
    kind = None if topic is None else world.entities[topic].kind
    colour = rng.choice([c for c in _COLOURS if kind is None or c.slots[0][1] == kind])
    binding = {}
    for slot, slot_kind in colour.slots:
        choices = [i for i in world.of_kind(slot_kind) if i not in binding.values()]
        if not choices:
            return None
        binding[slot] = topic if topic is not None and not binding else rng.choice(choices)
    low, high = _year_window(world, list(binding.values()))
    blocked = any(world.facts.get((binding[s], relation)) == binding[o] for s, relation, o in colour.avoid)
    if low > high or blocked:
        return None
    values = {slot: world.entities[index].name for slot, index in binding.items()}
    values["y"] = str(rng.randint(low, high))
    values.update(world.entities[binding[colour.slots[0][0]]].traits)
    mentions = tuple(binding.values())
    return _Sentence(_capitalize(colour.template.format(**values)), mentions[0], mentions, colour.template)


def _candidates(world: _World, rng: random.Random, deck: _Deck, question: _Question) -> Iterator[_Sentence]:
    """Non-evidence sentences, those sharing an entity or relation with the question tending to come first."""
    focus = {subject for subject, _ in question.facts} | {
        world.facts[fact] for fact in question.facts if _RELATIONS[fact[1]].target != "year"
    }
    relations = {relation for _, relation in question.facts}
    sentences = [_fact_sentence(world, deck, fact) for fact in world.facts if fact not in question.facts]
    for topic in sorted(focus):
        sentences += [_colour_sentence(world, rng, topic) for _ in range(3)]
    sentences += [_colour_sentence(world, rng) for _ in range(len(world.facts))]
    ranked = []
    for sentence in sentences:
        if sentence is not None:
            near = sentence.source in relations or not focus.isdisjoint(sentence.mentions)
            ranked.append((rng.random() * (0.5 if near else 1.0), len(ranked), sentence))
    yield from (sentence for _, _, sentence in sorted(ranked, key=lambda item: item[:2]))
    for _ in range(100_000):
        sentence = _colour_sentence(world, rng)
        if sentence is not None:
            yield sentence


def _select(evidence: list[_Sentence], candidates: Iterator[_Sentence], target_tokens: int) -> list[_Sentence]:
    """Add candidates to the evidence (one per relation or template and paragraph) until the document is long enough."""
    chosen, used = list(evidence), {(sentence.source, sentence.topic) for sentence in evidence}
    topics = {sentence.topic for sentence in evidence}
    chars = sum(len(sentence.text) for sentence in chosen)
    for sentence in candidates:
        if round((chars + len(chosen) + len(topics) - 2) / CHARS_PER_TOKEN) >= target_tokens:
            break
        if (sentence.source, sentence.topic) not in used:
            chosen.append(sentence)
            used.add((sentence.source, sentence.topic))
            topics.add(sentence.topic)
            chars += len(sentence.text)
    return chosen


def _layout(rng: random.Random, sentences: list[_Sentence], evidence: list[_Sentence]) -> str:
    """One paragraph per topic; evidence paragraphs go to the middles of equal stretches of the other paragraphs."""
    paragraphs: dict[int, list[str]] = {}
    for sentence in sentences:
        paragraphs.setdefault(sentence.topic, []).append(sentence.text)
    for texts in paragraphs.values():
        rng.shuffle(texts)
    key_topics = list(dict.fromkeys(sentence.topic for sentence in evidence))
    rng.shuffle(key_topics)
    others = [topic for topic in paragraphs if topic not in key_topics]
    rng.shuffle(others)
    order = list(others)
    bounds = [round(k * len(others) / len(key_topics)) for k in range(len(key_topics) + 1)]
    for k in reversed(range(len(key_topics))):
        margin = (bounds[k + 1] - bounds[k]) // 4
        slot = rng.randint(bounds[k] + margin, max(bounds[k], bounds[k + 1] - 1 - margin))
        order.insert(slot, key_topics[k])
    return "\n\n".join(" ".join(paragraphs[topic]) for topic in order)


def _question(world: _World, rng: random.Random, kind: str, hops: int) -> _Question | None:
    """A question of the given type and hop count, or None when this world has none."""
    if kind == "comparison":
        return _comparison(world, rng, hops)
    return _bridge(world, rng, hops, kind)


def _sample(rng: random.Random, pool: str, target_tokens: int, hops: int, kind: str) -> dict:
    """One sample: a world, a question about it and the document that answers it."""
    for _ in range(50):
        world = _build_world(rng, pool, target_tokens)
        question = _question(world, rng, kind, hops)
        if question is not None:
            break
    else:
        raise RuntimeError(f"could not build a {kind} question with {hops} hops")
    deck = _Deck(rng)
    evidence = [_fact_sentence(world, deck, fact) for fact in question.facts]
    sentences = _select(evidence, _candidates(world, rng, deck, question), target_tokens)
    context = _layout(rng, sentences, evidence)
    ordered = sorted((sentence.text for sentence in evidence), key=context.index)
    return {
        "type": question.type,
        "hops": hops,
        "question": question.text,
        "answer": question.answer,
        "evidence": ordered,
        "context": context,
    }


def _fresh_sample(rng: random.Random, pool: str, target_tokens: int, hops: int, kind: str, asked: set[str]) -> dict:
    """A sample whose question is not in `asked` (redrawn from the same generator on a repeat)."""
    for _ in range(100):
        sample = _sample(rng, pool, target_tokens, hops, kind)
        if sample["question"] not in asked:
            return sample
    raise RuntimeError(f"no new {kind} question after 100 draws")


def _validate(hops: int, pool: str, question_types: Sequence[str]) -> None:
    """Reject hop counts, pools and question types the generator cannot honour together."""
    _check_pool(pool)
    if not 1 <= hops <= MAX_HOPS:
        raise ValueError(f"hops must be between 1 and {MAX_HOPS}, got {hops}")
    for kind in question_types:
        if kind not in QUESTION_TYPES:
            raise ValueError(f"question type must be one of {QUESTION_TYPES}, got {kind!r}")
        if (kind == "lookup") != (hops == 1):
            raise ValueError(f"'lookup' questions need hops=1 and the others hops>=2; got {kind!r} with hops={hops}")


def generate_samples(
    n: int,
    seed: int,
    target_tokens: int | tuple[int, int] = 1500,
    hops: int = 2,
    pool: str = "main",
    id_prefix: str = "sample",
    question_types: Sequence[str] | None = None,
    exclude_questions: Collection[str] = (),
) -> list[dict]:
    """Generate n QA samples with distinct questions, none in exclude_questions; a (low, high) target varies."""
    kinds = tuple(question_types or (("lookup",) if hops == 1 else ("bridge", "comparison")))
    _validate(hops, pool, kinds)
    low, high = (target_tokens, target_tokens) if isinstance(target_tokens, int) else target_tokens
    samples, asked = [], set(exclude_questions)
    for index in range(n):
        rng = random.Random(f"{pool}/{seed}/{index}")
        sample = _fresh_sample(rng, pool, rng.randint(low, high), hops, kinds[index % len(kinds)], asked)
        asked.add(sample["question"])
        samples.append({"id": f"{id_prefix}-{index:04d}", **sample})
    return samples


def to_longbench(samples: Sequence[dict]) -> list[dict]:
    """Convert samples to LongBench records (id, type, input, answers, evidence, context)."""
    return [
        {
            "id": s["id"],
            "type": s["type"],
            "input": s["question"],
            "answers": [s["answer"]],
            "evidence": s["evidence"],
            "context": s["context"],
        }
        for s in samples
    ]


@dataclass(frozen=True)
class Bundle:
    """One bundled data set: a training file (none when `train_size` is 0) and three evaluation files of one length range."""

    folder: str
    train_size: int
    eval_size: int
    target_tokens: tuple[int, int]
    seed: int


BUNDLES = (
    Bundle("", 64, 16, BUNDLED_TARGET_TOKENS, 0),
    Bundle("tiny", 48, 8, TINY_TARGET_TOKENS, 10),
    Bundle("long", 24, 8, LONG_TARGET_TOKENS, 20),
    Bundle("heldout", 0, 48, TINY_TARGET_TOKENS, 30),  # 48 fresh items per set in the tiny set's lengths (cpu-demo)
)


def _write_bundle(out_dir: Path, bundle: Bundle, asked: list[str]) -> list[Path]:
    """Write one bundle's train.jsonl (if any) and eval/synth_*.jsonl, never repeating a question in `asked` (extended)."""
    folder = out_dir / bundle.folder
    prefix = f"{bundle.folder}-" if bundle.folder else ""
    paths = []
    if bundle.train_size:
        train = generate_samples(
            bundle.train_size,
            seed=bundle.seed,
            target_tokens=bundle.target_tokens,
            id_prefix=f"{prefix}train",
            exclude_questions=asked,
        )
        paths.append(folder / "train.jsonl")
        write_jsonl(paths[0], train)
        asked += [sample["question"] for sample in train]
    for name, seed, hops, kinds in _EVAL_SETS:
        samples = generate_samples(
            bundle.eval_size,
            seed=bundle.seed + seed,
            target_tokens=bundle.target_tokens,
            hops=hops,
            id_prefix=f"{prefix}{name}",
            question_types=kinds,
            exclude_questions=asked,
        )
        asked += [sample["question"] for sample in samples]
        paths.append(folder / "eval" / f"{name}.jsonl")
        write_jsonl(paths[-1], to_longbench(samples))
    return paths


def build_bundled_data(out_dir: Path) -> list[Path]:
    """Write every bundled data set (data/sample and its tiny, long and heldout folders) under out_dir; return the paths."""
    asked: list[str] = []
    return [path for bundle in BUNDLES for path in _write_bundle(Path(out_dir), bundle, asked)]


def main(argv: Sequence[str] | None = None) -> None:
    """Regenerate the bundled sample data from the command line."""
    parser = argparse.ArgumentParser(description="Regenerate the bundled synthetic QA data (byte for byte).")
    parser.add_argument("--out", type=Path, default=Path("data/sample"), help="output folder (default: data/sample)")
    args = parser.parse_args(argv)
    for path in build_bundled_data(args.out):
        print(path)


if __name__ == "__main__":
    main()
