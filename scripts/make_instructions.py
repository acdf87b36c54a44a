"""Generate the bundled SFT data's generated families and the held-out evaluation set, deterministically.

Run:  python scripts/make_instructions.py          (rewrites both files; the same bytes every time)
      python scripts/make_instructions.py --check  (exit 1 when a file differs from what this script writes)

``assets/datasets/instructions.jsonl`` keeps its hand-written rows (ids ``i0001``…, 15 families) and gets the
generated ones after them (ids ``g0001``…): more task families, phrasings and answer formats — the lecture's "many
tasks" (FLAN, T0). Short closed answers (a word, a number, a letter, yes/no) in many wordings teach the model to
*answer* on the first line when an instruction asks for it, rather than continue the text.

``assets/datasets/heldout.jsonl`` is written whole: the candidate families (:data:`HELDOUT_TEMPLATES`, from clusters
no training row belongs to, see :data:`CLUSTERS`) that the base model passed the few-shot screen with
(:data:`SCREEN_RULE`; ``scripts/screen_heldout.py`` writes ``heldout_screen.json``, which this script reads).
``tests/test_heldout_data.py`` checks the families, the clusters, the screen and near-duplicate wordings. Every
held-out answer is closed, so every check is ``exact`` (first line).

Why generated from lists rather than written row by row: the same template × item product gives many wordings
with no typos, and the lists can be checked against the held-out clusters in one place.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTIONS = ROOT / "assets" / "datasets" / "instructions.jsonl"
HELDOUT = ROOT / "assets" / "datasets" / "heldout.jsonl"
SEED = 15
PER_FAMILY = 16
"""Held-out examples per family: 16 per family keeps the paired intervals usable and evaluation to a minute or two."""

# Task family → cluster. A held-out family's cluster has no training family (FLAN holds out whole clusters).
CLUSTERS: dict[str, str] = {
    # hand-written training families
    "sentiment": "classification", "topic_classification": "classification", "paraphrase": "rewriting",
    "formality": "rewriting", "grammar_correction": "rewriting", "extraction": "extraction",
    "closed_qa": "closed-book QA", "reading_comprehension": "reading comprehension",
    "summarization": "summarization", "brainstorming": "open generation", "explanation": "open generation",
    "arithmetic": "arithmetic", "formatting": "formatting", "translation": "translation",
    "antonyms_synonyms": "word meaning",
    # generated training families
    "short_fact": "closed-book QA", "multiple_choice_fact": "closed-book QA",
    "passage_yes_no": "reading comprehension", "passage_short_answer": "reading comprehension",
    "sum_difference": "arithmetic", "word_count": "counting", "letter_count": "counting",
    "fill_in_blank": "cloze", "country_language": "closed-book QA", "case_conversion": "formatting",
    "translate_word": "translation", "synonym_choice": "word meaning",
    "opposite_word": "word meaning", "capital_city": "closed-book QA", "currency": "closed-book QA",
    "chemical_symbol": "closed-book QA", "double_or_half": "arithmetic", "unit_conversion": "arithmetic",
    "initials": "formatting",
    # held-out families
    "plural_of_noun": "word forms", "past_tense_of_verb": "word forms", "female_form": "word forms",
    "next_letter": "order and comparison", "larger_number": "order and comparison",
    "odd_one_out": "categorization", "baby_animal": "categorization",
    "color_of_thing": "commonsense properties", "yes_no_fact": "commonsense properties",
    "number_as_word": "number words",
    "smaller_number": "order and comparison", "next_in_calendar": "order and comparison",
    "animal_class": "categorization", "tool_for_job": "commonsense properties",
    "animal_sound": "animal sounds",
}


# ================================================================================================ held-out data

PLURALS = [("child", "children"), ("mouse", "mice"), ("box", "boxes"), ("city", "cities"), ("man", "men"),
           ("tooth", "teeth"), ("foot", "feet"), ("baby", "babies"), ("knife", "knives"), ("woman", "women"),
           ("goose", "geese"), ("leaf", "leaves"), ("bus", "buses"), ("dish", "dishes"), ("wolf", "wolves"),
           ("person", "people"), ("story", "stories"), ("glass", "glasses"), ("church", "churches"),
           ("party", "parties"), ("potato", "potatoes"), ("fox", "foxes"), ("lady", "ladies"), ("shelf", "shelves")]
PAST = [("go", "went"), ("eat", "ate"), ("walk", "walked"), ("swim", "swam"), ("run", "ran"), ("see", "saw"),
        ("write", "wrote"), ("take", "took"), ("play", "played"), ("sing", "sang"), ("drink", "drank"),
        ("buy", "bought"), ("think", "thought"), ("sleep", "slept"), ("jump", "jumped"), ("give", "gave"),
        ("come", "came"), ("fly", "flew"), ("speak", "spoke"), ("drive", "drove"), ("teach", "taught"),
        ("catch", "caught"), ("bring", "brought"), ("begin", "began")]
FEMALE = [("king", "queen"), ("actor", "actress"), ("prince", "princess"), ("boy", "girl"), ("father", "mother"),
          ("brother", "sister"), ("uncle", "aunt"), ("husband", "wife"), ("son", "daughter"), ("nephew", "niece"),
          ("waiter", "waitress"), ("lion", "lioness"), ("duke", "duchess"), ("hero", "heroine"),
          ("grandfather", "grandmother"), ("emperor", "empress"), ("god", "goddess"), ("host", "hostess"),
          ("man", "woman"), ("gentleman", "lady"), ("stepson", "stepdaughter"), ("groom", "bride"),
          ("monk", "nun"), ("wizard", "witch")]
BABIES = [("dog", "puppy"), ("cat", "kitten"), ("cow", "calf"), ("sheep", "lamb"), ("horse", "foal"),
          ("frog", "tadpole"), ("duck", "duckling"), ("pig", "piglet"), ("bear", "cub"), ("kangaroo", "joey"),
          ("hen", "chick"), ("deer", "fawn"), ("goose", "gosling"), ("lion", "cub"), ("goat", "kid"),
          ("owl", "owlet"), ("swan", "cygnet"), ("eagle", "eaglet"), ("fox", "cub"), ("elephant", "calf"),
          ("whale", "calf"), ("butterfly", "caterpillar"), ("rabbit", "kit"), ("tiger", "cub")]
COLORS = [("a ripe banana", "yellow"), ("fresh snow", "white"), ("grass", "green"), ("coal", "black"),
          ("a ripe tomato", "red"), ("milk", "white"), ("the sky on a clear day", "blue"), ("a lemon", "yellow"),
          ("a carrot", "orange"), ("a crow", "black"), ("a lime", "green"), ("chocolate", "brown"),
          ("a polar bear's fur", "white"), ("an emerald", "green"), ("a ruby", "red"), ("a pumpkin", "orange"),
          ("a school bus in the United States", "yellow"), ("blood", "red"), ("a flamingo", "pink"),
          ("an eggplant", "purple"), ("the sea on a sunny day", "blue"), ("a fire truck", "red"),
          ("a sunflower's petals", "yellow"), ("charcoal", "black")]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
YES_NO = [("Is the Sun a star?", "yes"), ("Is gold a metal?", "yes"), ("Can fish breathe underwater?", "yes"),
          ("Is the Moon smaller than the Earth?", "yes"), ("Does a triangle have three sides?", "yes"),
          ("Is ice colder than boiling water?", "yes"), ("Do cats have feathers?", "no"),
          ("Is a whale a fish?", "no"), ("Can a car fly like a bird?", "no"), ("Is the ocean made of sugar?", "no"),
          ("Do bees make honey?", "yes"), ("Is a tomato a kind of animal?", "no"), ("Is water wet?", "yes"),
          ("Do penguins live in the desert?", "no"), ("Is fire hot?", "yes"), ("Can dogs bark?", "yes"),
          ("Is a spider an insect with six legs?", "no"), ("Does the Sun rise in the east?", "yes"),
          ("Is a week longer than a year?", "no"), ("Do trees have roots?", "yes"), ("Can a rock swim?", "no"),
          ("Is Paris a country?", "no"), ("Do humans need water to live?", "yes"), ("Is a circle square?", "no")]
ODD = [(("apple", "banana", "carrot", "grape"), "carrot"), (("shirt", "socks", "jacket", "spoon"), "spoon"),
       (("fork", "knife", "ladle", "pillow"), "pillow"), (("doctor", "teacher", "nurse", "mountain"), "mountain"),
       (("red", "blue", "green", "chair"), "chair"), (("dog", "cat", "horse", "table"), "table"),
       (("piano", "guitar", "violin", "hammer"), "hammer"), (("Monday", "Friday", "Sunday", "April"), "April"),
       (("car", "bus", "train", "banana"), "banana"), (("rose", "tulip", "daisy", "brick"), "brick"),
       (("circle", "square", "triangle", "river"), "river"), (("eagle", "sparrow", "robin", "salmon"), "salmon"),
       (("January", "March", "July", "Tuesday"), "Tuesday"), (("milk", "juice", "water", "bread"), "bread"),
       (("lion", "tiger", "leopard", "cabbage"), "cabbage"), (("pen", "pencil", "crayon", "sandal"), "sandal"),
       (("one", "seven", "twelve", "purple"), "purple"), (("oak", "pine", "maple", "shark"), "shark"),
       (("hat", "cap", "helmet", "carpet"), "carpet"), (("nose", "ear", "elbow", "window"), "window"),
       (("gold", "silver", "copper", "cotton"), "cotton"), (("rain", "snow", "hail", "sofa"), "sofa"),
       (("France", "Spain", "Italy", "Tokyo"), "Tokyo"), (("cup", "mug", "glass", "ladder"), "ladder")]

CALENDAR = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Monday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December", "January"]
ANIMAL_CLASSES = [("dolphin", "mammal"), ("eagle", "bird"), ("salmon", "fish"), ("snake", "reptile"),
                  ("frog", "amphibian"), ("whale", "mammal"), ("shark", "fish"), ("penguin", "bird"),
                  ("lizard", "reptile"), ("bat", "mammal"), ("owl", "bird"), ("tuna", "fish"),
                  ("crocodile", "reptile"), ("cow", "mammal"), ("parrot", "bird"), ("trout", "fish"),
                  ("turtle", "reptile"), ("salamander", "amphibian"), ("toad", "amphibian"), ("horse", "mammal")]
TOOLS = [("cut paper", "scissors"), ("sweep the floor", "broom"), ("open a locked door", "key"),
         ("eat soup", "spoon"), ("write on a blackboard", "chalk"), ("brush your teeth", "toothbrush"),
         ("dry yourself after a shower", "towel"), ("drive a nail into wood", "hammer"),
         ("sew a button onto a shirt", "needle"), ("take a photo", "camera"), ("stay dry in the rain", "umbrella"),
         ("find your way in a strange city", "map"), ("measure a fever", "thermometer"),
         ("climb onto a roof", "ladder"), ("bake a cake", "oven"), ("boil water for tea", "kettle"),
         ("look at tiny cells", "microscope"), ("sharpen a pencil", "sharpener")]
SOUNDS = [("moo", "cow"), ("oink", "pig"), ("baa", "sheep"), ("quack", "duck"), ("neigh", "horse"),
          ("meow", "cat"), ("woof", "dog"), ("hoot", "owl"), ("ribbit", "frog"), ("hiss", "snake"), ("buzz", "bee"),
          ("gobble", "turkey"), ("hee-haw", "donkey"), ("squeak", "mouse"), ("howl", "wolf"),
          ("cock-a-doodle-doo", "rooster"), ("cluck", "hen"), ("tweet", "bird")]

HELDOUT_TEMPLATES: dict[str, list[str]] = {
    "plural_of_noun": ['What is the plural of "{x}"?', 'Give the plural form of the noun "{x}". One word only.',
                       'One {x}, two ... ? Write the plural.', 'Write "{x}" in the plural.'],
    "past_tense_of_verb": ['What is the past tense of "{x}"?', 'Give the simple past form of the verb "{x}".',
                           'Yesterday I ___ (to {x}). Write the missing verb form only.',
                           'Put the verb "{x}" into the past tense.'],
    "female_form": ['What is the female form of "{x}"?', 'Give the feminine counterpart of the word "{x}".',
                    'A male is called a {x}; what is the female called? One word.',
                    '"{x}" is to man as what is to woman?'],
    "baby_animal": ['What is a baby {x} called?', 'Name the young of a {x}. One word.',
                    'A young {x} is called a what?', 'What do you call a newborn {x}?'],
    "color_of_thing": ['What color is {x}?', 'Name the usual colour of {x} in one word.',
                       'Which color do you think of for {x}? Give just the color.', 'Usually, {x} is what color?'],
    "yes_no_fact": ['Answer yes or no: {x}', '{x} Reply with yes or no.', 'Yes or no? {x}',
                    'Just say yes or no. {x}'],
    "odd_one_out": ['Which word does not belong: {x}?', 'Find the odd one out: {x}.',
                    'One of these is not like the others: {x}. Which one?',
                    'Which item is the odd one out in this list: {x}?'],
    "number_as_word": ['Write the number {x} in words.', 'Spell out the number {x} in English letters.',
                       'How do you write {x} as an English word?', 'Write {x} as a word, not digits.'],
    "next_letter": ['Which letter comes right after {x} in the alphabet?', 'What letter follows {x} in the alphabet?',
                    'In the English alphabet, what is the next letter after {x}?', 'A, B, C... What letter comes after {x}?'],
    "larger_number": ['Which number is larger, {x}?', 'Which is the bigger number: {x}?',
                      'Of {x}, which number is greater?', 'Pick the larger number: {x}.'],
    "smaller_number": ['Which number is smaller, {x}?', 'Which is the lower number: {x}?',
                       'Of {x}, which number is less?', 'Pick the smaller number: {x}.'],
    "next_in_calendar": ['What comes right after {x}?', 'Name the one that follows {x} in the calendar.',
                         'In the calendar, what comes after {x}? One word.', 'First {x}, and next comes what?'],
    "animal_class": ['Is a {x} a mammal, bird, fish, reptile or amphibian?',
                     'Which animal group does the {x} belong to: mammal, bird, fish, reptile or amphibian?',
                     'Classify the {x} as a mammal, bird, fish, reptile or amphibian. One word.',
                     'Mammal, bird, fish, reptile or amphibian: what is a {x}?'],
    "tool_for_job": ['What do you use to {x}?', 'Name the thing people use to {x}. One word.',
                     'Which object helps you {x}?', 'To {x}, you need a what?'],
    "animal_sound": ['Which animal says "{x}"?', 'What animal makes the sound "{x}"? One word.',
                     'Name the animal that goes "{x}".', '"{x}!" Which animal makes this sound?'],
}
"""Candidate held-out families, in report order; :func:`held_out_families` keeps those the base model passes the
screen with (:data:`SCREEN`)."""


def _heldout_items(rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """Per held-out family, (the template's ``{x}``, the answer)."""
    letters = [chr(c) for c in range(ord("B"), ord("Y"))]
    pairs = [(f"{a} or {b}", str(max(a, b))) for a, b in (rng.sample(range(10, 100), 2) for _ in range(24))]
    small, days = random.Random(f"{SEED}-smaller"), CALENDAR  # own seed: the first families' items stay as they were
    return {
        "plural_of_noun": PLURALS, "past_tense_of_verb": PAST, "female_form": FEMALE, "baby_animal": BABIES,
        "color_of_thing": COLORS, "yes_no_fact": YES_NO,
        "odd_one_out": [(", ".join(words), answer) for words, answer in ODD],
        "number_as_word": [(str(n), NUMBER_WORDS[n]) for n in rng.sample(range(1, 21), 20)]
                          + [(str(n), NUMBER_WORDS[n]) for n in (3, 8, 11, 16)],
        "next_letter": [(letter, chr(ord(letter) + 1)) for letter in rng.sample(letters, 23)] + [("K", "L")],
        "larger_number": pairs,
        "smaller_number": [(f"{a} or {b}", str(min(a, b)))
                           for a, b in (small.sample(range(10, 100), 2) for _ in range(24))],
        "next_in_calendar": [(days[i], days[i + 1]) for i in range(7)] + [(MONTHS[i], MONTHS[i + 1]) for i in range(12)],
        "animal_class": ANIMAL_CLASSES, "tool_for_job": TOOLS, "animal_sound": SOUNDS,
    }


def _chosen_items() -> dict[str, list[tuple[str, str]]]:
    """Per candidate family, its :data:`PER_FAMILY` items in a seeded order. Every candidate is shuffled, in
    :data:`HELDOUT_TEMPLATES` order, whichever are kept: a family's items don't depend on which others pass the
    screen, so the screen and the held-out set ask about the same things."""
    rng = random.Random(SEED)
    items = _heldout_items(rng)
    chosen = {}
    for family in HELDOUT_TEMPLATES:
        order = list(items[family])
        rng.shuffle(order)
        chosen[family] = order[:PER_FAMILY]
    return chosen


def heldout_rows(families: list[str] | None = None) -> list[dict]:
    """The held-out rows of ``families`` (default: :func:`held_out_families`): for each, its chosen items, the
    templates taken in turn."""
    chosen = _chosen_items()
    rows = []
    for family in held_out_families() if families is None else families:
        templates = HELDOUT_TEMPLATES[family]
        for index, (x, answer) in enumerate(chosen[family]):
            rows.append({"id": f"h{len(rows) + 1:03d}", "task": family,
                         "instruction": templates[index % len(templates)].format(x=x), "input": "",
                         "answer": answer, "check": "exact"})
    return rows


# ---------------------------------------------------------------------- the screen: which families are held out

SCREEN = ROOT / "assets" / "datasets" / "heldout_screen.json"
SCREEN_SHOTS = 3
SCREEN_THRESHOLD = 0.5
SCREEN_RULE = (f"A candidate family is held out when the base model, shown {SCREEN_SHOTS} solved examples of the "
               f"same family drawn at random from its other items, as plain text (few-shot, no instruction "
               f"tuning), answers at least "
               f"{SCREEN_THRESHOLD:.0%} of the family's {PER_FAMILY} held-out items exactly (first line, greedy).")
"""Why a screen: instruction tuning teaches a model to *answer*; it can't teach a 270M model a skill it lacks
(``foot`` → ``feet``). FLAN's comparison is zero-shot tuned against few-shot base, so the few-shot base marks what
the model can do once the task is made clear. The rule reads only the base model's answers, never a tuned one's, and
it is fixed before any candidate family is evaluated: ``scripts/screen_heldout.py`` writes :data:`SCREEN`."""


def screen_prompts(family: str) -> list[tuple[str, str]]:
    """(few-shot prompt, answer) for each of the family's held-out items: :data:`SCREEN_SHOTS` other items of the
    family drawn at random (seeded), solved in the same wording, then the item itself to answer. The draw doesn't
    look at the answer: excluding demos with the item's answer would show a yes/no item three opposite answers."""
    items = _heldout_items(random.Random(SEED))[family]
    templates = HELDOUT_TEMPLATES[family]
    prompts = []
    for index, (x, answer) in enumerate(_chosen_items()[family]):
        template = templates[index % len(templates)]
        others = [(ox, oa) for ox, oa in dict.fromkeys(items) if ox != x]
        shots = random.Random(f"{SEED}-{family}-{index}").sample(others, SCREEN_SHOTS)
        text = "".join(f"Question: {template.format(x=ox)}\nAnswer: {oa}\n\n" for ox, oa in shots)
        prompts.append((f"{text}Question: {template.format(x=x)}\nAnswer:", answer))
    return prompts


def held_out_families(screen: Path = SCREEN) -> list[str]:
    """The candidate families the screen passed, in :data:`HELDOUT_TEMPLATES` order."""
    if not screen.exists():
        raise SystemExit(f"{screen} is missing: run scripts/screen_heldout.py first "
                         "(it needs the base model).")
    results = json.loads(screen.read_text(encoding="utf-8"))["families"]
    return [family for family in HELDOUT_TEMPLATES
            if family in results and results[family]["accuracy"] >= SCREEN_THRESHOLD]

# ================================================================================================ training data

FACTS = [("What is the largest planet in our solar system?", "Jupiter"),
         ("Which planet is closest to the Sun?", "Mercury"), ("What is the chemical symbol for gold?", "Au"),
         ("Who painted the Mona Lisa?", "Leonardo da Vinci"), ("What is the tallest mountain on Earth?", "Mount Everest"),
         ("What gas do plants take in from the air?", "Carbon dioxide"), ("How many continents are there on Earth?", "7"),
         ("What is the longest river in Africa?", "The Nile"), ("In which country are the pyramids of Giza?", "Egypt"),
         ("What is the freezing point of water in degrees Celsius?", "0"), ("Who wrote Hamlet?", "William Shakespeare"),
         ("What is the hardest natural substance?", "Diamond"), ("How many days are in a leap year?", "366"),
         ("What is the capital of Canada?", "Ottawa"), ("What is the capital of Kenya?", "Nairobi"),
         ("What is the capital of Norway?", "Oslo"), ("Which organ pumps blood through the body?", "The heart"),
         ("What is the main ingredient of guacamole?", "Avocado"), ("How many strings does a standard guitar have?", "6"),
         ("Which ocean lies between Africa and Australia?", "The Indian Ocean"),
         ("What instrument has 88 keys?", "The piano"), ("Who was the first person to walk on the Moon?", "Neil Armstrong"),
         ("What is the smallest prime number?", "2"), ("Which metal is liquid at room temperature?", "Mercury"),
         ("How many minutes are in an hour?", "60"), ("What currency is used in Japan?", "The yen"),
         ("Which planet is known as the Red Planet?", "Mars"), ("What is the boiling point of water in degrees Celsius?", "100"),
         ("Which continent is Brazil in?", "South America"), ("What do bees collect from flowers?", "Nectar")]
FACT_FRAMES = ["{q}", "{q} Answer in as few words as possible.", "Short answer only: {q}", "{q} Just the answer, please.",
               "Quiz question: {q}", "Q: {q}"]
LANGUAGES = [("Brazil", "Portuguese"), ("Mexico", "Spanish"), ("Germany", "German"), ("Japan", "Japanese"),
             ("Egypt", "Arabic"), ("Greece", "Greek"), ("Poland", "Polish"), ("Sweden", "Swedish"),
             ("Turkey", "Turkish"), ("Argentina", "Spanish"), ("Austria", "German"), ("South Korea", "Korean"),
             ("the Netherlands", "Dutch"), ("Portugal", "Portuguese"), ("Finland", "Finnish"), ("Italy", "Italian")]
LANGUAGE_FRAMES = ["What language is mainly spoken in {x}?", "Which language do most people in {x} speak? One word.",
                   "Official language of {x}?", "People in {x} mostly speak which language?"]
CHOICES = [("Which of these is a mammal?", ["shark", "dolphin", "trout"], 1),
           ("Which of these is a planet?", ["Saturn", "Sirius", "Andromeda"], 0),
           ("Which of these is used to write?", ["spoon", "pencil", "plate"], 1),
           ("Which of these is a musical instrument?", ["violin", "kettle", "ladder"], 0),
           ("Which of these grows underground?", ["apple", "cherry", "potato"], 2),
           ("Which of these is the largest?", ["an ant", "a mouse", "an elephant"], 2),
           ("Which of these is a source of light?", ["a lamp", "a rug", "a cushion"], 0),
           ("Which of these is a vegetable?", ["broccoli", "salmon", "cheese"], 0),
           ("Which of these can fly?", ["a turtle", "a sparrow", "a goldfish"], 1),
           ("Which of these is frozen water?", ["steam", "ice", "sand"], 1),
           ("Which of these do you wear on your feet?", ["gloves", "boots", "scarves"], 1),
           ("Which of these is a country?", ["Peru", "Lima", "the Andes"], 0),
           ("Which of these is a fruit?", ["lettuce", "onion", "mango"], 2),
           ("Which of these tells the time?", ["a clock", "a bucket", "a sock"], 0),
           ("Which of these is a liquid at room temperature?", ["iron", "olive oil", "salt"], 1),
           ("Which of these animals lives in the sea?", ["an octopus", "a camel", "a squirrel"], 0)]
PASSAGES = [("Lena took the 8 o'clock train to Leeds on Saturday. She visited her grandmother and came home on Sunday evening.",
             [("Did Lena travel by train?", "Yes", "How many days was Lena away?", "2"),
              ("Did Lena come home on Saturday?", "No", "Who did Lena visit?", "Her grandmother")]),
            ("The café on Mill Street opens at 7 a.m. and closes at 3 p.m. It is closed on Mondays. It sells coffee, tea and pastries.",
             [("Is the café open on Mondays?", "No", "What time does the café open?", "7 a.m."),
              ("Does the café sell tea?", "Yes", "On which street is the café?", "Mill Street")]),
            ("Omar planted twelve tomato plants in May. By August, nine of them had fruit, and he gave half of his harvest to his neighbours.",
             [("Did all of Omar's plants have fruit?", "No", "How many plants had fruit?", "9"),
              ("Did Omar share his harvest?", "Yes", "In which month did Omar plant the tomatoes?", "May")]),
            ("The library lends books for three weeks. Members can renew a book twice online, unless someone else has reserved it.",
             [("Can members renew books online?", "Yes", "For how many weeks are books lent?", "3"),
              ("Can a reserved book always be renewed?", "No", "How many times can a book be renewed?", "2")]),
            ("Priya's team lost their first match 2-1 but won the next three. They finished second in the league, behind the Hawks.",
             [("Did Priya's team win the league?", "No", "Which team finished first?", "The Hawks"),
              ("Did the team win its second match?", "Yes", "How many goals did Priya's team score in the first match?", "1")]),
            ("The museum's new dinosaur hall opened in March. Entry is free for children under twelve, and adults pay eight dollars.",
             [("Do adults have to pay?", "Yes", "How much do adults pay, in dollars?", "8"),
              ("Do ten-year-olds pay for entry?", "No", "When did the dinosaur hall open?", "In March")]),
            ("Sam's bike had a flat tyre, so he walked to school. He arrived ten minutes late and missed the start of the maths test.",
             [("Did Sam ride his bike to school?", "No", "Why did Sam walk?", "His bike had a flat tyre"),
              ("Was Sam late?", "Yes", "How many minutes late was Sam?", "10")]),
            ("The bakery sells bread, cakes and cookies. On Fridays it also sells fresh pizza, but only until noon.",
             [("Can you buy pizza there on Friday afternoon?", "No", "On which day does the bakery sell pizza?", "Friday"),
              ("Does the bakery sell cookies?", "Yes", "Until what time is pizza sold?", "Noon")])]
YES_NO_FRAMES = ["{p}\n\nQuestion: {q} Answer yes or no.", "Read the text and answer yes or no.\n\n{p}\n\n{q}",
                 "{q} Base your answer on this text and reply with yes or no: {p}"]
SHORT_FRAMES = [("Question: {q} Give a short answer.", "{p}"), ("Answer from the passage in a few words: {q}", "{p}"),
                ("Using only this text, answer briefly: {q}", "{p}")]
"""(instruction, input) of a short-answer question on a passage."""
WORDS = ["apple", "river", "garden", "pencil", "mountain", "window", "bottle", "summer", "rocket", "ticket",
         "planet", "butter", "candle", "forest", "guitar", "island", "jacket", "kitchen", "ladder", "marble"]
SENTENCES = ["The dog ran across the park.", "We ate dinner at seven.", "My sister plays the violin every evening.",
             "Rain is expected tomorrow.", "The old bridge was closed for repairs last week.",
             "Please close the door.", "Birds sing in the morning.", "He forgot his umbrella on the bus again.",
             "Coffee keeps me awake.", "The children built a sandcastle near the water.",
             "Our train leaves at noon.", "She painted the fence blue."]
TRANSLATIONS = [("house", "Spanish", "casa"), ("water", "Spanish", "agua"), ("book", "French", "livre"),
                ("cat", "French", "chat"), ("dog", "German", "Hund"), ("bread", "French", "pain"),
                ("friend", "Spanish", "amigo"), ("thank you", "German", "danke"), ("good night", "Spanish", "buenas noches"),
                ("apple", "German", "Apfel"), ("sun", "Italian", "sole"), ("hello", "Italian", "ciao"),
                ("school", "Spanish", "escuela"), ("car", "French", "voiture"), ("moon", "Spanish", "luna"),
                ("milk", "German", "Milch")]
TRANSLATE_FRAMES = ['Translate the word "{w}" into {l}.', 'How do you say "{w}" in {l}? Only the {l} word(s).',
                    '"{w}" in {l} is?', 'Give the {l} for "{w}".']
SYNONYMS = [("big", "large", "tiny"), ("fast", "quick", "slow"), ("happy", "glad", "sad"), ("begin", "start", "finish"),
            ("smart", "clever", "foolish"), ("angry", "furious", "calm"), ("tired", "sleepy", "lively"),
            ("rich", "wealthy", "poor"), ("quiet", "silent", "noisy"), ("brave", "courageous", "afraid"),
            ("easy", "simple", "hard"), ("shut", "close", "open"), ("little", "small", "huge"), ("wet", "damp", "dry"),
            ("funny", "amusing", "boring"), ("fix", "repair", "break")]
BLANKS = [("I drink a cup of ___ every morning.", ["coffee", "chair"], "coffee"),
          ("She opened the ___ to let in some fresh air.", ["window", "sandwich"], "window"),
          ("The ___ barked at the mail carrier.", ["dog", "lamp"], "dog"),
          ("We need an umbrella because it is ___.", ["raining", "sleeping"], "raining"),
          ("He brushed his ___ before bed.", ["teeth", "clouds"], "teeth"),
          ("The baker put the bread in the ___.", ["oven", "river"], "oven"),
          ("Please write your name with a ___.", ["pen", "cloud"], "pen"),
          ("At night we can see the ___ in the sky.", ["stars", "shoes"], "stars"),
          ("They planted ___ in the garden.", ["flowers", "televisions"], "flowers"),
          ("I keep the milk cold in the ___.", ["fridge", "oven"], "fridge"),
          ("The train arrived at the ___ on time.", ["station", "kitchen"], "station"),
          ("She read a ___ before going to sleep.", ["book", "spoon"], "book"),
          ("The pilot landed the ___ safely.", ["plane", "cake"], "plane"),
          ("We swam in the ___ all afternoon.", ["lake", "library"], "lake"),
          ("My phone battery is empty, so I need to ___ it.", ["charge", "paint"], "charge"),
          ("The farmer milked the ___.", ["cow", "tractor"], "cow")]

# Families whose one-word answer is *not* in the prompt: most closed answers above (choices, blanks, case, passages)
# are a word copied from the prompt, and a model tuned on those alone learns to copy — asked for the plural of
# "foot" it answers "foot". These teach it that an answer can be a word it has to produce.
OPPOSITES = [("hot", "cold"), ("up", "down"), ("early", "late"), ("full", "empty"), ("light", "dark"),
             ("strong", "weak"), ("young", "old"), ("open", "closed"), ("heavy", "light"), ("win", "lose"),
             ("push", "pull"), ("inside", "outside"), ("cheap", "expensive"), ("thick", "thin"), ("wide", "narrow"),
             ("sweet", "sour"), ("left", "right"), ("above", "below"), ("buy", "sell"), ("remember", "forget")]
OPPOSITE_FRAMES = ['What is the opposite of "{x}"?', 'Give the antonym of "{x}". One word.',
                   'Opposite of {x}?', 'Write a word that means the opposite of "{x}".']
CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Egypt", "Cairo"),
            ("Germany", "Berlin"), ("Russia", "Moscow"), ("Greece", "Athens"), ("Ireland", "Dublin"),
            ("Peru", "Lima"), ("China", "Beijing"), ("Thailand", "Bangkok"), ("Portugal", "Lisbon"),
            ("Austria", "Vienna"), ("Cuba", "Havana"), ("Sweden", "Stockholm"), ("Argentina", "Buenos Aires"),
            ("Poland", "Warsaw"), ("India", "New Delhi"), ("Belgium", "Brussels")]
CAPITAL_FRAMES = ["What is the capital of {x}?", "Name the capital city of {x}.", "{x}'s capital is which city?",
                  "Capital of {x}? City name only."]
CURRENCIES = [("the United States", "dollar"), ("the United Kingdom", "pound"), ("India", "rupee"),
              ("China", "yuan"), ("Mexico", "peso"), ("Russia", "ruble"), ("Switzerland", "franc"),
              ("South Korea", "won"), ("Brazil", "real"), ("Germany", "euro"), ("South Africa", "rand"),
              ("Thailand", "baht")]
CURRENCY_FRAMES = ["What is the currency of {x}?", "Which money do people use in {x}? Name the currency.",
                   "Currency used in {x}?"]
SYMBOLS = [("oxygen", "O"), ("hydrogen", "H"), ("carbon", "C"), ("iron", "Fe"), ("sodium", "Na"),
           ("silver", "Ag"), ("helium", "He"), ("nitrogen", "N"), ("copper", "Cu"), ("calcium", "Ca"),
           ("potassium", "K"), ("lead", "Pb")]
SYMBOL_FRAMES = ["What is the chemical symbol for {x}?", "Chemical symbol of {x}?",
                 "Write the symbol of the element {x}."]
CONVERSIONS = [("metres", 3, "centimetres", 100), ("hours", 2, "minutes", 60), ("kilograms", 4, "grams", 1000),
               ("minutes", 5, "seconds", 60), ("days", 3, "hours", 24), ("weeks", 2, "days", 7),
               ("kilometres", 6, "metres", 1000), ("years", 4, "months", 12), ("litres", 2, "millilitres", 1000),
               ("dozen", 3, "items", 12), ("hours", 5, "minutes", 60), ("centimetres", 7, "millimetres", 10)]
CONVERSION_FRAMES = ["How many {small} are in {n} {big}?", "Convert {n} {big} to {small}. Number only.",
                     "{n} {big} is how many {small}?"]
INITIALS = [("World Health Organization", "WHO"), ("United Nations", "UN"), ("European Union", "EU"),
            ("Very Important Person", "VIP"), ("Frequently Asked Questions", "FAQ"),
            ("Personal Identification Number", "PIN"), ("Unidentified Flying Object", "UFO"),
            ("As Soon As Possible", "ASAP"), ("Do It Yourself", "DIY"), ("Central Processing Unit", "CPU"),
            ("Automated Teller Machine", "ATM"), ("Global Positioning System", "GPS")]
INITIALS_FRAMES = ['Write the initials of "{x}".', 'What is the abbreviation made of the first letters of "{x}"?',
                   'Shorten "{x}" to its capital initials.']


def _produced_rows(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """Short answers the model must produce rather than copy (see :data:`OPPOSITES`)."""
    def take(task, items, frames, fill):
        return [(task, frames[i % len(frames)].format(**fill(item)), "", answer)
                for i, (item, answer) in enumerate(items)]

    rows = take("opposite_word", [(x, a) for x, a in OPPOSITES], OPPOSITE_FRAMES, lambda x: {"x": x})
    rows += take("capital_city", CAPITALS, CAPITAL_FRAMES, lambda x: {"x": x})
    rows += take("currency", CURRENCIES, CURRENCY_FRAMES, lambda x: {"x": x})
    rows += take("chemical_symbol", SYMBOLS, SYMBOL_FRAMES, lambda x: {"x": x})
    rows += take("unit_conversion", [((big, n, small), str(n * factor)) for big, n, small, factor in CONVERSIONS],
                 CONVERSION_FRAMES, lambda item: {"big": item[0], "n": item[1], "small": item[2]})
    rows += take("initials", INITIALS, INITIALS_FRAMES, lambda x: {"x": x})
    halves = ["What is double {n}?", "Half of {n} is?", "What is twice {n}?", "What is half of {n}?"]
    for i in range(16):
        n = rng.randint(6, 49) * 2
        rows.append(("double_or_half", halves[i % 4].format(n=n), "", str(n * 2 if i % 2 == 0 else n // 2)))
    return rows


def _fact_rows(rng: random.Random) -> list[tuple[str, str, str, str]]:
    rows = [("short_fact", rng.choice(FACT_FRAMES).format(q=q), "", a) for q, a in FACTS]
    rows += [("country_language", LANGUAGE_FRAMES[i % len(LANGUAGE_FRAMES)].format(x=x), "", a)
             for i, (x, a) in enumerate(LANGUAGES)]
    for i, (question, options, right) in enumerate(CHOICES):
        labelled = " ".join(f"{'ABC'[j]}) {option}" for j, option in enumerate(options))
        if i % 3 == 0:
            rows.append(("multiple_choice_fact", f"{question} Answer with the letter.", labelled, "ABC"[right]))
        elif i % 3 == 1:
            rows.append(("multiple_choice_fact", f"{question}\n{labelled}", "", f"{'ABC'[right]}) {options[right]}"))
        else:
            rows.append(("multiple_choice_fact", f"{question} Choose one: {', '.join(options)}.", "",
                         options[right][0].upper() + options[right][1:]))
    return rows


def _passage_rows(rng: random.Random) -> list[tuple[str, str, str, str]]:
    rows = []
    for i, (passage, questions) in enumerate(PASSAGES):
        for j, (yes_no, yes_no_answer, short, short_answer) in enumerate(questions):
            frame = YES_NO_FRAMES[(i + j) % len(YES_NO_FRAMES)]
            rows.append(("passage_yes_no", frame.format(p=passage, q=yes_no), "", yes_no_answer))
            instruction, text = SHORT_FRAMES[(i + j) % len(SHORT_FRAMES)]
            rows.append(("passage_short_answer", instruction.format(q=short), text.format(p=passage), short_answer))
    return rows


def _arithmetic_rows(rng: random.Random) -> list[tuple[str, str, str, str]]:
    frames = ["What is {a} {op} {b}?", "Calculate {a} {op} {b}. Answer with a number.", "{a} {op} {b} = ?",
              "Work out {a} {op} {b} and give only the result."]
    rows = []
    for i in range(20):
        a, b = rng.randint(11, 89), rng.randint(2, 40)
        op, result = ("+", a + b) if i % 2 == 0 else ("-", a - b)
        rows.append(("sum_difference", frames[i % len(frames)].format(a=a, op=op, b=b), "", str(result)))
    return rows


def _counting_rows(rng: random.Random) -> list[tuple[str, str, str, str]]:
    rows = []
    word_frames = ["How many words are in this sentence? Answer with a number.", "Count the words in the sentence below.",
                   "Number of words in this text?"]
    for i, sentence in enumerate(SENTENCES):
        rows.append(("word_count", word_frames[i % len(word_frames)], sentence, str(len(sentence.split()))))
    letter_frames = ['How many letters are in the word "{w}"?', 'Count the letters in "{w}". Reply with a number only.',
                     '"{w}" has how many letters?']
    for i, word in enumerate(WORDS[:14]):
        rows.append(("letter_count", letter_frames[i % len(letter_frames)].format(w=word), "", str(len(word))))
    return rows


def _word_rows(rng: random.Random) -> list[tuple[str, str, str, str]]:
    rows = []
    case_frames = [("Write this word in capital letters.", str.upper), ("Convert to lowercase.", str.lower),
                   ("Rewrite in all caps.", str.upper), ("Make every letter lowercase.", str.lower)]
    for i, word in enumerate(WORDS):
        instruction, change = case_frames[i % len(case_frames)]
        shown = word if change is str.upper else word.upper() if i % 2 else word.capitalize()
        rows.append(("case_conversion", instruction, shown, change(word)))
    rows += [("translate_word", TRANSLATE_FRAMES[i % len(TRANSLATE_FRAMES)].format(w=w, l=language), "", target)
             for i, (w, language, target) in enumerate(TRANSLATIONS)]
    synonym_frames = ['Which word means the same as "{w}": {a} or {b}?',
                      'Pick the synonym of "{w}" from these two: {a}, {b}.',
                      '"{w}" is closest in meaning to which word, {a} or {b}? One word.']
    for i, (word, same, other) in enumerate(SYNONYMS):
        a, b = (same, other) if rng.random() < 0.5 else (other, same)
        rows.append(("synonym_choice", synonym_frames[i % len(synonym_frames)].format(w=word, a=a, b=b), "", same))
    blank_frames = ["Fill in the blank with the better word ({a} or {b}).", "Choose the word that fits the gap: {a} or {b}.",
                    "Complete the sentence. Options: {a}, {b}. Write only the missing word."]
    for i, (sentence, options, answer) in enumerate(BLANKS):
        a, b = options if rng.random() < 0.5 else options[::-1]
        rows.append(("fill_in_blank", blank_frames[i % len(blank_frames)].format(a=a, b=b), sentence, answer))
    return rows


def generated_rows() -> list[dict]:
    """The generated training rows (ids g0001…), in a seeded order so families are interleaved."""
    rng = random.Random(SEED)
    rows = _fact_rows(rng) + _passage_rows(rng) + _arithmetic_rows(rng) + _counting_rows(rng) + _word_rows(rng)
    rows += _produced_rows(random.Random(f"{SEED}-produced"))  # own seed: the rows above stay as they were
    return [{"id": f"g{index:04d}", "task": task, "instruction": instruction, "input": text, "output": output}
            for index, (task, instruction, text, output) in enumerate(rows, 1)]


def instruction_rows() -> list[dict]:
    """The hand-written rows already in the file (every id not starting with ``g``), then the generated ones."""
    kept = [json.loads(line) for line in INSTRUCTIONS.read_text(encoding="utf-8").splitlines()
            if line.strip() and not json.loads(line)["id"].startswith("g")]
    return kept + generated_rows()


def write_jsonl(path: Path, rows: list[dict]) -> str:
    """The file's text: one JSON object a line, UTF-8 as written."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file would change")
    args = parser.parse_args(argv)
    outputs = {INSTRUCTIONS: write_jsonl(INSTRUCTIONS, instruction_rows()),
               HELDOUT: write_jsonl(HELDOUT, heldout_rows())}
    stale = [path for path, text in outputs.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} differs from what scripts/make_instructions.py writes", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
