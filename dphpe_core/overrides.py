"""A command line's Config overrides: `--set key=value` pairs, and the flags that are aliases of Config
fields (`--clip-norm 0.1` is `--set clip_norm=0.1`), each typed like its field and checked, never guessed.

    dphpe train --preset smoke --method dpsgd --clip-norm 0.1 --set epsilon=0.4
"""

from __future__ import annotations

from . import config as config_mod


BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_sets(pairs: list[str]) -> dict:
    """`key=value` strings -> overrides typed like the Config field they name. A field named twice, a
    boolean that is not one of BOOLEANS and a value of the wrong type are refused, never guessed."""
    types = {f.name: f.type for f in config_mod.fields(config_mod.Config)}
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        if key not in types:
            config_mod.check_names({key: None}, context="--set")
        if key in out:
            raise SystemExit(f"{key} is given twice ({key}={out[key]!r} and {pair!r}): give each field once")
        kind = types[key]
        if kind == "bool":
            if value.lower() not in BOOLEANS:
                raise SystemExit(f"--set {key}: expected a boolean, one of {', '.join(BOOLEANS)}; got {value!r}")
            out[key] = BOOLEANS[value.lower()]
            continue
        try:
            out[key] = {"int": int, "float": float, "str": str}[kind](value)
        except ValueError:
            raise SystemExit(f"--set {key}: expected a value of type {kind}, got {value!r}") from None
    return out


# flags that are aliases of Config fields: `--clip-norm 0.1` is `--set clip_norm=0.1`, typed like the field, its
# choices config's own constants; a field given both ways is refused (parse_overrides)
FIELD_CHOICES = {"method": config_mod.METHODS, "strategy": config_mod.STRATEGIES, "fdp_public": config_mod.FDP_PUBLIC}


FIELD_FLAG = "field_"


def field_flags(parser, *names: str, choices: dict | None = None):
    """Add `--<name>` for each Config field in `names` (choices: FIELD_CHOICES, or `choices`' narrower ones)."""
    types = {f.name: f.type for f in config_mod.fields(config_mod.Config)}
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), dest=FIELD_FLAG + name,
                            type={"int": int, "float": float, "str": str}[types[name]],
                            choices=(choices or {}).get(name, FIELD_CHOICES.get(name)),
                            help=f"the config field {name} (as --set {name}=...)")
    return parser


def parse_overrides(args) -> dict:
    """The Config overrides of a command line: its --set pairs and its field flags, each field once."""
    out = parse_sets(getattr(args, "set", None) or [])
    for dest, value in vars(args).items():
        name = dest[len(FIELD_FLAG):]
        if dest.startswith(FIELD_FLAG) and value is not None:
            if name in out:
                raise SystemExit(f"{name} is given twice (--{name.replace('_', '-')} {value} and --set "
                                 f"{name}={out[name]!r}): give each field once")
            out[name] = value
    return out
