"""Captions a person would write for a clip, in several phrasings, from its file's and its animation's names.

    describe("animals-Deer", "AnimalArmature|Gallop").captions
    -> ("a deer galloping", "a galloping deer", "an animal galloping", "a deer running at a gallop",
        "an animal running at a gallop")

The subject comes from the file name. A pack prefix (the text before the first '-': `animals-`, `cute_fish-`) gives
the kind and a broader word (PACKS); the name's words (split at capitals and '_', numbers and collection words such as
'Quaternius' dropped) are looked up in SUBJECTS for names people say otherwise ('ShibaInu' -> 'shiba inu',
'Enemy_2Legs' -> 'two-legged robot'), else read as they are ('BlueTang' -> 'blue tang').
The motion comes from the clip name: the armature before '|' is dropped, then the longest tail of its words found in
MOTIONS gives the phrasings, names before the motion dropped ('Stegosaurus_Death' -> 'death' -> 'dying'); an
unnamed clip ('Anim_0') shows the subject's usual motion, 'moving' if nobody listed one; a name nobody listed is read
as it is (a motion's first word as a gerund).
The kind names the asset's family for balancing a data set ("mammal", "fish", "robot", ...); the priority orders an
asset's clips for a build that keeps only some: its signature motion (walk, swim, fly) first, death last.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Subject:
    """What a file shows."""

    noun: str  # "deer"
    kind: str  # the family, for balancing
    general: str = ""  # a broader word people use as well ("animal"); "" when there is none
    motion: str = "moving"  # what its unnamed clips show
    moves: str = ""  # "flying", "slithering": what its 'walk' and 'run' clips show (LOCOMOTION)


@dataclass(frozen=True)
class Description:
    """The captions of one clip, the canonical one first, and what a build needs to choose and balance clips."""

    captions: tuple[str, ...]
    kind: str
    motion: str  # the canonical motion phrase: two clips with the same one show the same thing
    priority: int  # 0 the signature motion, 1 other actions, 2 idles and variants, 3 hits and death


# pack prefix -> (kind, broader word, noun for every file of the pack: their names are people's names)
PACKS = {
    "animals": ("mammal", "animal", ""), "cute_fish": ("fish", "fish", ""), "fish": ("fish", "fish", ""),
    "dinosaurs": ("dinosaur", "dinosaur", ""), "easy_enemies": ("small creature", "animal", ""),
    "cyberpunk": ("robot", "robot", ""), "mech": ("robot", "robot", "mech"), "platformer_game": ("object", "", ""),
    "single_knight": ("character", "person", ""), "tank": ("vehicle", "vehicle", ""), "ultimate_space": ("character", "person", ""),
}
COLLECTION_WORDS = {"quaternius", "animated", "rigged", "simple", "morph", "stress", "test", "skin"}
CHARACTER_KINDS = {"character"}  # "their" rather than "its"

# Keys: the name's lower-case words joined ('shibainu'), tried with the pack first ('cyberpunk:enemyflying'), then
# without numbers ('tank2' -> 'tank'), then the first word alone ('astronaut' for 'Astronaut_FinnTheFrog').
SUBJECTS = {
    # ../shared/assets: the glTF sample models and two Quaternius animals
    "cesiumman": Subject("man", "character", "person", "walking"),
    "riggedfigure": Subject("figure", "character", "person"),
    "cesiummilktruck": Subject("milk truck", "vehicle", "truck", "driving"),
    "boxanimated": Subject("box", "object"),
    "animatedmorphcube": Subject("cube", "object", "shape", "morphing"),
    "animatedmorphsphere": Subject("sphere", "object", "ball", "morphing"),
    "morphstresstest": Subject("bumpy panel", "object", "shape", "morphing"),
    "riggedsimple": Subject("cylinder", "object", "shape", "bending"),
    "simplemorph": Subject("triangle", "object", "shape", "morphing"),
    "simpleskin": Subject("strip", "object", "shape", "bending"),
    "stag": Subject("stag", "mammal", "deer"), "wolf": Subject("wolf", "mammal", "animal"),
    # Quaternius packs (../shared/assets/quaternius)
    "shibainu": Subject("shiba inu", "mammal", "dog"), "husky": Subject("husky", "mammal", "dog"),
    "rat": Subject("rat", "mammal", "animal"), "frog": Subject("frog", "small creature", "animal"),
    "snake": Subject("snake", "small creature", "animal", moves="slithering"),
    "snakeangry": Subject("angry snake", "small creature", "snake", moves="slithering"),
    "wasp": Subject("wasp", "small creature", "insect"), "bee": Subject("bee", "small creature", "insect"),
    "betta": Subject("betta fish", "fish", "fish"), "blacklionfish": Subject("black lionfish", "fish", "fish"),
    "butterflyfish": Subject("butterflyfish", "fish", "fish"), "cardinalfish": Subject("cardinalfish", "fish", "fish"),
    "flowerhorn": Subject("flowerhorn cichlid", "fish", "fish"), "humphead": Subject("humphead wrasse", "fish", "fish"),
    "parrotfish": Subject("parrotfish", "fish", "fish"), "puffer": Subject("pufferfish", "fish", "fish"),
    "zebraclownfish": Subject("zebra clownfish", "fish", "fish"), "fish3": Subject("clownfish", "fish", "fish"),
    "mantaray": Subject("manta ray", "fish", "ray"), "dolphin": Subject("dolphin", "fish", "sea animal"),
    "whale": Subject("whale", "fish", "sea animal"), "goblinshark": Subject("goblin shark", "fish", "shark"),
    "enemy2legs": Subject("two-legged robot", "robot", "robot"), "enemy2legsgun": Subject("two-legged robot with a gun", "robot", "robot"),
    "cyberpunk:enemyflying": Subject("drone", "robot", "robot", moves="flying"),
    "cyberpunk:enemyflyinggun": Subject("drone with a gun", "robot", "robot", moves="flying"),
    "cyberpunk:enemylarge": Subject("large robot", "robot", "robot"),
    "cyberpunk:enemylargegun": Subject("large robot with a gun", "robot", "robot"),
    "cyberpunk:character": Subject("cyberpunk character", "character", "person"),
    "platformer_game:character": Subject("cartoon character", "character", "person"),
    "charactergun": Subject("cartoon character with a gun", "character", "person"),
    "bouncer": Subject("spring pad", "object", "spring"), "chest": Subject("treasure chest", "object", "chest"),
    "hazardspiketrap": Subject("spike trap", "object", "trap"), "lever": Subject("lever", "object"),
    "platformer_game:enemy": Subject("horned monster", "monster", "monster"), "skull": Subject("skull monster", "monster", "monster"),
    "knightcharacter": Subject("knight", "character", "person"), "tank": Subject("tank", "vehicle", "vehicle"),
    "astronaut": Subject("astronaut", "character", "person"), "mech": Subject("mech", "robot", "robot"),
    "ultimate_space:enemyextrasmall": Subject("tiny alien", "monster", "alien"),
    "ultimate_space:enemysmall": Subject("small alien", "monster", "alien"),
    "ultimate_space:enemyflying": Subject("flying alien", "monster", "alien"),
    "ultimate_space:enemylarge": Subject("large alien", "monster", "alien"),
}

_FLINCH = ("flinching from a hit", "recoiling from a blow")
_DEATH = ("dying", "falling over dead", "collapsing")
# Clip-name words (numbers dropped) -> (phrasings, the plainest first; priority). "{its}": "its", or "their" for people.
MOTIONS: dict[tuple[str, ...], tuple[tuple[str, ...], int]] = {
    ("walk",): (("walking", "strolling along"), 0), ("walking",): (("walking", "strolling along"), 0),
    ("run",): (("running", "running along"), 0), ("gallop",): (("galloping", "running at a gallop"), 0),
    ("swim",): (("swimming", "swimming along"), 0), ("swimming", "normal"): (("swimming", "swimming along"), 0),
    ("flying",): (("flying", "flying around"), 0), ("flying", "idle"): (("hovering", "hovering in place"), 0),
    ("forward",): (("driving forward", "rolling forward"), 0), ("bounce",): (("bouncing", "bouncing up and down"), 0),
    ("open",): (("opening", "swinging open"), 0), ("on",): (("switching on", "being pulled on"), 0),
    ("activate",): (("springing {its} spikes", "shooting {its} spikes up"), 0),
    ("square",): (("morphing", "changing shape"), 0), ("globe",): (("morphing", "changing shape"), 0),
    ("individuals",): (("bulging in places", "morphing"), 0), ("pulse",): (("pulsing", "throbbing"), 0),
    ("the", "wave"): (("rippling", "rippling in a wave"), 0),
    ("swimming", "fast"): (("swimming fast", "darting through the water"), 1),
    ("swimming", "impulse"): (("swimming in bursts", "swimming with quick strokes"), 1),
    ("fast", "flying"): (("flying fast", "darting through the air"), 1),
    ("backwards",): (("reversing", "driving backwards"), 1), ("close",): (("closing", "swinging shut"), 1),
    ("off",): (("switching off", "being pushed off"), 1),
    ("turning", "left"): (("turning left", "turning to the left"), 1), ("turning", "right"): (("turning right", "turning to the right"), 1),
    ("attack",): (("attacking", "lunging to attack"), 1), ("attack", "headbutt"): (("headbutting", "butting with {its} head"), 1),
    ("headbutt",): (("headbutting", "butting with {its} head"), 1), ("attack", "kick"): (("kicking", "kicking out"), 1),
    ("kick",): (("kicking", "kicking out"), 1), ("punch",): (("punching", "throwing a punch"), 1),
    ("eating",): (("eating", "eating with {its} head down"), 1), ("jump",): (("jumping", "leaping"), 1),
    ("jump", "to", "idle"): (("jumping", "leaping and landing"), 1),
    ("gallop", "jump"): (("leaping mid-gallop", "jumping while galloping"), 1),
    ("wave",): (("waving", "waving hello"), 1), ("hello",): (("waving hello", "waving"), 1),
    ("dance",): (("dancing", "dancing happily"), 1), ("shoot",): (("shooting", "firing a gun"), 1),
    ("gun", "shoot"): (("shooting", "firing a gun"), 1), ("sword", "slash"): (("swinging a sword", "slashing with a sword"), 1),
    ("bite", "front"): (("biting", "snapping forward"), 1), ("roll",): (("rolling", "doing a forward roll"), 1),
    ("pickup",): (("picking something up", "bending to pick something up"), 1),
    ("sword", "attack", "jump"): (("jumping and swinging a sword", "leaping with a sword strike"), 1),
    ("bite", "in", "place"): (("snapping {its} jaws", "biting the air"), 2),
    ("kick", "left"): (("kicking with {its} left leg",), 2), ("kick", "right"): (("kicking with {its} right leg",), 2),
    ("punch", "left"): (("punching with {its} left fist",), 2), ("punch", "right"): (("punching with {its} right fist",), 2),
    ("shoot", "big"): (("firing a big blast",), 2), ("shoot", "small"): (("firing small shots",), 2),
    ("roll", "sword"): (("rolling with a sword",), 2), ("interact",): (("reaching out to press something",), 2),
    ("yes",): (("nodding", "nodding yes"), 2), ("no",): (("shaking {its} head", "shaking {its} head no"), 2),
    ("duck",): (("ducking", "crouching down"), 2), ("weapon",): (("drawing a weapon", "pulling out a weapon"), 2),
    ("run", "back"): (("running backwards",), 2), ("run", "left"): (("running to the left",), 2),
    ("run", "right"): (("running to the right",), 2), ("run", "shoot"): (("running and shooting",), 2),
    ("run", "gun"): (("running with a gun",), 2), ("run", "gun", "shoot"): (("running and shooting",), 2),
    ("run", "holding"): (("running while carrying something",), 2), ("run", "tall"): (("running",), 2),
    ("walk", "gun"): (("walking with a gun",), 2), ("walk", "holding"): (("walking while carrying something",), 2),
    ("walk", "tall"): (("walking",), 2), ("run", "sword", "attack"): (("running and swinging a sword",), 2),
    ("run", "sword", "right"): (("running with a sword",), 2),
    ("idle",): (("standing idle", "standing still"), 2), ("idle", "neutral"): (("standing idle", "standing still"), 2),
    ("idle", "headlow"): (("standing with {its} head low", "standing with {its} head lowered"), 2),
    ("idle", "head", "low"): (("standing with {its} head low", "standing with {its} head lowered"), 2),
    ("idle", "gun"): (("standing with a gun",), 2), ("idle", "gun", "pointing"): (("aiming a gun", "pointing a gun"), 2),
    ("idle", "gun", "shoot"): (("shooting", "firing a gun"), 2), ("idle", "shoot"): (("shooting", "firing a gun"), 2),
    ("idle", "sword"): (("standing with a sword",), 2), ("idle", "sword", "left"): (("holding a sword",), 2),
    ("idle", "sword", "right"): (("holding a sword",), 2), ("jump", "idle"): (("jumping in place", "hopping in place"), 2),
    ("jump", "land"): (("landing from a jump",), 2), ("jump", "landing"): (("landing from a jump",), 2),
    ("jump", "no", "height"): (("hopping", "doing a small hop"), 2),
    ("out", "of", "water"): (("flopping out of water", "flapping about on land"), 2),
    ("hit", "react"): (_FLINCH, 3), ("hit", "recieve"): (_FLINCH, 3), ("hit", "receive"): (_FLINCH, 3),
    ("idle", "hit", "react", "left"): (_FLINCH, 3), ("idle", "hit", "react", "right"): (_FLINCH, 3),
    ("death",): (_DEATH, 3), ("dead",): (_DEATH, 3),
}
MOTION_WORDS = {word for key in MOTIONS for word in key}
LOCOMOTION = {  # Subject.moves -> the phrasings of its 'walk' and 'run' clips
    "flying": {"walking": ("flying", "flying along"), "running": ("flying fast", "speeding through the air")},
    "slithering": {"walking": ("slithering", "slithering along"), "running": ("slithering fast",)},
}
UNNAMED = {"anim", "animation", "action"}  # importer names of unnamed clips: 'Anim_0'
MAX_CAPTIONS = 6


def words(name: str) -> list[str]:
    """Lower-case words of a name: 'Idle_HitReact_Left' -> ['idle', 'hit', 'react', 'left'], 'Tank2' -> ['tank', '2']."""
    return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]


def article(phrase: str) -> str:
    """The phrase with 'a' or 'an' before it."""
    vowel = phrase[0] in "aeio" or (phrase[0] == "u" and not phrase.startswith(("uni", "use")))
    return ("an " if vowel else "a ") + phrase


def gerund(verb: str) -> str:
    """'dance' -> 'dancing', 'swim' -> 'swimming', 'moonwalk' -> 'moonwalking': for motions nobody listed."""
    if verb.endswith("ing"):
        return verb
    if re.fullmatch(r".*[^aeiou]e", verb):
        return verb[:-1] + "ing"
    if re.fullmatch(r"[^aeiou]*[aeiou][^aeiouwxy]", verb):  # one vowel, one final consonant: double it
        return verb + verb[-1] + "ing"
    return verb + "ing"


def subject_of(file_stem: str) -> Subject:
    """What a file shows, from its name: 'animals-ShibaInu' -> Subject('shiba inu', 'mammal', 'dog')."""
    pack, _, name = file_stem.partition("-") if "-" in file_stem else ("", "", file_stem)
    kind, general, pack_noun = PACKS.get(pack, ("other", "", ""))
    named = [w for w in words(name) if w not in COLLECTION_WORDS] or words(name)
    plain = [w for w in named if not w.isdigit()] or named
    keys = ["".join(words(name)), "".join(named), "".join(plain), plain[0] if plain else ""]
    for key in keys:
        for candidate in (f"{pack}:{key}", key):
            if candidate in SUBJECTS:
                return SUBJECTS[candidate]
    return Subject(pack_noun or " ".join(plain), kind, general if general != " ".join(plain) else "")


def motion_of(clip_name: str, subject: Subject) -> tuple[tuple[str, ...], int]:
    """(phrasings, priority) of a clip from its name; see MOTIONS."""
    clip_words = [w for w in words(clip_name.split("|")[-1]) if not w.isdigit()]
    if not [w for w in clip_words if w not in UNNAMED]:
        return (subject.motion,), 0
    for start in range(len(clip_words)):  # the longest listed tail after names: 'stegosaurus death' -> 'death'
        if start and clip_words[start - 1] in MOTION_WORDS:  # 'walk backwards' is not 'backwards'
            break
        if tuple(clip_words[start:]) in MOTIONS:
            phrasings, priority = MOTIONS[tuple(clip_words[start:])]
            phrasings = LOCOMOTION.get(subject.moves, {}).get(phrasings[0], phrasings)
            its = "their" if subject.kind in CHARACTER_KINDS else "its"
            return tuple(p.format(its=its) for p in phrasings), priority
    return (" ".join([gerund(clip_words[0])] + clip_words[1:]),), 1


def describe(file_stem: str, clip_name: str) -> Description:
    """The captions of a clip (at most MAX_CAPTIONS): the subject doing the motion, the motion as an adjective
    ('a galloping deer'), then each phrasing of the motion with the subject's noun and its broader word."""
    subject = subject_of(file_stem)
    phrasings, priority = motion_of(clip_name, subject)
    nouns = [subject.noun] + ([subject.general] if subject.general not in ("", subject.noun) else [])
    captions = [f"{article(noun)} {motion}" for motion in phrasings for noun in nouns]
    if " " not in phrasings[0] and phrasings[0].endswith("ing"):
        captions.insert(1, article(f"{phrasings[0]} {subject.noun}"))
    return Description(tuple(dict.fromkeys(captions))[:MAX_CAPTIONS], subject.kind, phrasings[0], priority)
