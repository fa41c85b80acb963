"""Zero-shot ESC-50 classification with an AudioSet head: which AudioSet classes stand for each ESC class.

An AudioSet-pretrained model (EfficientAT mn, PANNs CNN10, HTS-AT) has 527 sigmoid outputs and no
ESC-50 head. To classify ESC-50 clips without training, each ESC-50 class is mapped to the AudioSet
classes that describe the same sound, and **an ESC class scores the maximum of the sigmoid scores of
its mapped AudioSet classes**; the prediction is the ESC class (among those being tested) with the
highest score. Sigmoid outputs are independent per class, so the max is the probability-like score of
the best-matching description.

How the map was made (by hand, from the AudioSet ontology's display names):
- Only specific classes are used, never ancestors such as 'Animal', 'Vehicle', 'Music' or 'Domestic
  sounds', which fire for many ESC classes at once and would decide every clip.
- Every AudioSet class appears under at most one ESC class, so two ESC classes never tie on a shared
  description.
- Where AudioSet has no class for the sound, the nearest descriptions are used and marked below:
  drinking_sipping (no drinking class: gurgling, gargling, slosh, liquid), mouse_click ('Clicking'
  only), can_opening (no can class: the pop and crack of the tab), washing_machine (no washing-machine
  class: mechanisms, vibration, throbbing, rumble) and hand_saw ('Sawing', 'Filing (rasp)').
  Expect these classes to be weak zero-shot; that is a property of the label sets, not of the model.
"""
import numpy as np

from jaxnoise.data.labels import audioset_labels
from jaxnoise.errors import ConfigError

# ESC-50 category (target id = position) -> AudioSet display names.
ESC50_TO_AUDIOSET = {
    "dog": ("Dog", "Bark", "Yip", "Howl", "Bow-wow", "Growling", "Whimper (dog)"),
    "rooster": ("Chicken, rooster", "Crowing, cock-a-doodle-doo"),
    "pig": ("Pig", "Oink"),
    "cow": ("Cattle, bovinae", "Moo"),
    "frog": ("Frog", "Croak"),
    "cat": ("Cat", "Purr", "Meow", "Hiss", "Caterwaul"),
    "hen": ("Fowl", "Cluck"),
    "insects": ("Insect", "Fly, housefly", "Buzz", "Mosquito", "Bee, wasp, etc."),
    "sheep": ("Sheep", "Bleat"),
    "crow": ("Crow", "Caw"),
    "rain": ("Rain", "Raindrop", "Rain on surface"),
    "sea_waves": ("Ocean", "Waves, surf"),
    "crackling_fire": ("Fire", "Crackle"),
    "crickets": ("Cricket",),
    "chirping_birds": ("Bird", "Bird vocalization, bird call, bird song", "Chirp, tweet"),
    "water_drops": ("Drip", "Plop"),
    "wind": ("Wind", "Rustling leaves", "Wind noise (microphone)"),
    "pouring_water": ("Pour", "Trickle, dribble", "Fill (with liquid)"),
    "toilet_flush": ("Toilet flush",),
    "thunderstorm": ("Thunderstorm", "Thunder"),
    "crying_baby": ("Baby cry, infant cry", "Crying, sobbing"),
    "sneezing": ("Sneeze",),
    "clapping": ("Clapping", "Applause"),
    "breathing": ("Breathing", "Wheeze", "Gasp", "Pant", "Sigh"),
    "coughing": ("Cough", "Throat clearing"),
    "footsteps": ("Walk, footsteps", "Run", "Shuffle"),
    "laughing": ("Laughter", "Giggle", "Snicker", "Belly laugh", "Chuckle, chortle",
                 "Baby laughter"),
    "brushing_teeth": ("Toothbrush", "Electric toothbrush"),
    "snoring": ("Snoring",),
    "drinking_sipping": ("Gurgling", "Gargling", "Slosh", "Liquid"),  # nearest: no drinking class
    "door_wood_knock": ("Knock", "Door", "Tap"),
    "mouse_click": ("Clicking",),  # nearest: no computer-mouse class
    "keyboard_typing": ("Typing", "Computer keyboard", "Typewriter"),
    "door_wood_creaks": ("Creak", "Squeak"),
    "can_opening": ("Burst, pop", "Crack"),  # nearest: no can class
    "washing_machine": ("Mechanisms", "Vibration", "Throbbing", "Rumble"),  # nearest
    "vacuum_cleaner": ("Vacuum cleaner",),
    "clock_alarm": ("Alarm clock", "Alarm", "Beep, bleep", "Buzzer"),
    "clock_tick": ("Tick", "Tick-tock", "Clock"),
    "glass_breaking": ("Shatter", "Glass", "Breaking", "Smash, crash"),
    "helicopter": ("Helicopter",),
    "chainsaw": ("Chainsaw",),
    "siren": ("Siren", "Civil defense siren", "Police car (siren)", "Ambulance (siren)",
              "Fire engine, fire truck (siren)", "Emergency vehicle"),
    "car_horn": ("Vehicle horn, car horn, honking", "Toot", "Air horn, truck horn"),
    "engine": ("Engine", "Idling", "Engine starting", "Medium engine (mid frequency)",
               "Heavy engine (low frequency)", "Light engine (high frequency)",
               "Engine knocking", "Accelerating, revving, vroom"),
    "train": ("Train", "Rail transport", "Railroad car, train wagon", "Train wheels squealing",
              "Train whistle", "Train horn", "Subway, metro, underground"),
    "church_bells": ("Church bell", "Bell", "Change ringing (campanology)"),
    "airplane": ("Aircraft", "Fixed-wing aircraft, airplane", "Aircraft engine", "Jet engine",
                 "Propeller, airscrew"),
    "fireworks": ("Fireworks", "Firecracker", "Explosion"),
    "hand_saw": ("Sawing", "Filing (rasp)"),  # nearest: no hand-saw class
}


def audioset_indices(category: str, mapping=None) -> tuple[int, ...]:
  """Output indices of the AudioSet classes mapped to ``category`` by ``mapping`` (a label map,
  ``jaxnoise.data.label_map.load``; default: the ESC-50 map above)."""
  mapping = ESC50_TO_AUDIOSET if mapping is None else mapping
  if not mapping.get(category):
    where = ("the built-in ESC-50 map" if mapping is ESC50_TO_AUDIOSET
             else "config.model.label_map")
    raise ConfigError(f"no AudioSet mapping for the class {category!r} in {where}; map every "
                      "tested label to AudioSet classes in a JSON file and set "
                      "config.model.label_map (python -m jaxnoise.data.label_map --labels ... "
                      "prints a suggestion to edit)")
  position = {name: index for index, name in enumerate(audioset_labels())}
  return tuple(position[name] for name in mapping[category])


def index_table(categories, mapping=None) -> tuple[np.ndarray, np.ndarray]:
  """Gather table of the mapped AudioSet outputs for ``categories`` (in that order), by
  ``mapping`` (default: the ESC-50 map).

  Returns:
    ``(indices [classes, width] int32, valid [classes, width] bool)``: row ``c`` lists the AudioSet
    outputs of category ``c``, padded (with index 0, marked invalid) to the longest row, so the ESC
    scores are one gather and one masked max: see ``jaxnoise.sweep.readout``.
  """
  rows = [audioset_indices(category, mapping) for category in categories]
  width = max(len(row) for row in rows)
  indices = np.zeros((len(rows), width), np.int32)
  valid = np.zeros((len(rows), width), bool)
  for position, row in enumerate(rows):
    indices[position, :len(row)] = row
    valid[position, :len(row)] = True
  return indices, valid
