"""The weighted rules of the prompt-injection check, in ten families.

Each `Rule` is a regular expression over normalised text (lower case, accents folded,
leetspeak undone; see `injection.normalize`) with a weight in 0..1 and trigger words:
word groups that must all occur in the same sentence for the rule to run at all, which
keeps benign prompts from paying for patterns they cannot match. Weights were set by
hand: 0.85-0.9 for unambiguous attack phrasing ("ignore all previous instructions"),
0.5-0.75 for strong signals that have benign uses, 0.25-0.45 for weak evidence that
only counts together with something else (the detector combines fired rules as a
noisy-OR).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Rule:
    """One weighted pattern, run on normalised text only when a trigger word is present."""

    name: str
    family: str
    weight: float
    pattern: re.Pattern[str]
    need: tuple[frozenset[str], ...]
    """Word groups: the rule runs only if every group shares a word with the prompt."""
    substrings: tuple[str, ...] = ()
    """Alternatively, the rule runs if one of these occurs in the normalised prompt."""
    min_matches: int = 1
    """More than 1: the pattern must match this often in the whole prompt (not per sentence)."""


def _rule(
    name: str,
    family: str,
    weight: float,
    pattern: str,
    words: str = "",
    substrings: Sequence[str] = (),
    min_matches: int = 1,
) -> Rule:
    groups = _NEED.get(name, (words,) if words else ())
    return Rule(
        name,
        family,
        weight,
        re.compile(pattern, re.MULTILINE),
        tuple(frozenset(tokenize(group)) for group in groups),
        tuple(substrings),
        min_matches,
    )


_OVERRIDE_VERBS = (
    r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|skip|bypass|override|overriding"
    r"|overlook|discard|abandon|neglect|drop|erase|wipe|cancel|dismiss|set aside|put aside"
    r"|throw out|throw away|pay no attention to|pay no heed to|stop following|stop obeying"
    r"|do not follow|don't follow|dont follow|no longer follow|disobey|circumvent|never mind"
    r"|nevermind|scrap|ditch|delete|clear|suspend|revoke|unlearn|reset|replace|stop using|overwrite"
    r"|nullify|void|deactivate|turn off|switch off|disable|remove|ignore all of)"
)
_OVERRIDE_WORDS = (
    "ignore ignoring disregard disregarding forget forgetting skip bypass override overriding "
    "overlook discard abandon neglect drop erase wipe cancel dismiss aside throw attention heed "
    "following obeying follow disobey circumvent mind nevermind scrap ditch delete clear suspend "
    "revoke unlearn reset replace using overwrite nullify void deactivate turn switch disable "
    "remove"
)
_STRONG_QUALIFIER = (
    r"(?:previous|prior|preceding|above|earlier|former|original|initial|system|your|ur|safety"
    r"|content|ethical|moral|developer|developers|all|any|every|whatever|whichever|operator|operators"
    r"|creator|creators|admin|default|core|base)(?:'s)?"
)
_CORE_TARGET = (
    r"(?:instructions?|prompts?|rules?|directives?|directions?|guidelines?|guidance|commands?"
    r"|behaviou?r|configuration|system\s++message"
    r"|orders|constraints?|programming|restrictions?|polic(?:y|ies)|guardrails?|safeguards?"
    r"|conditioning|ethics|principles|protocols?|moderation|censorship|training|filters?"
    r"|setup|persona|instruction set|system prompt|system message)"
)
_SAFETY_NOUNS = (
    r"(?:filters?|filtering|guidelines|restrictions|safeguards|guardrails|policies|policy|rules"
    r"|protocols|moderation|limitations|limits|checks|modules?|settings|training|constraints"
    r"|programming|principles|layers?|systems?|mechanisms?|measures|features|censorship)"
)
_NOT_AN_OBJECT = r"(?!\s++(?:my|the|a|an|your|our|this|that|all|every|for|in|on)\b)"
_NOT_A_DEVICE = (
    r"(?!\s++(?:on|in)\s++(?:my|the|a|an|our|this|excel|chrome|windows|linux|android|ios|iphone"
    r"|router|firefox)\b)"
)
_REVEAL_VERBS = (
    r"(?:reveal|show|print|output|display|repeat|recite|tell|give|share|leak|dump|expose"
    r"|disclose|echo|paste|spell out|write out|write down|type out|list|quote|copy|return|send"
    r"|translate|summari[sz]e|encode|provide|read back|read out|state|what's|what is|what are"
    r"|what were|what was|describe|put|insert|include|convert|spell|copypaste|copy paste)"
)
_REVEAL_WORDS = (
    "reveal show print output display repeat recite tell give share leak dump expose disclose "
    "echo paste spell write type list quote copy return send translate summarize summarise "
    "encode provide read state what describe put insert include convert copypaste"
)
_AI_NOUNS = (
    r"(?:ai|a\.i\.|assistant|llm|language model|large language model|model|chatbot|chat bot|bot"
    r"|agent|copilot|gpt|ai agent|ai assistant|ai model|ai system|ai reviewer|summari[sz]er)"
)
_AI_WORDS = (
    "ai assistant llm model models chatbot bot agent agents copilot gpt summarizer summariser"
)
_PERSONA_ADJECTIVES = (
    r"(?:uncensored|unfiltered|unrestricted|unrestrained|unbounded|unlimited|amoral|immoral"
    r"|unethical|jailbroken|jail broken|unchained|unshackled|unaligned|rogue|evil|malicious"
    r"|lawless|rule breaking|rulebreaking|limitless|no limits|liberated|uninhibited|free|freed"
    r"|unmoderated|uncontrolled|unhinged|based|dark)"
)
_PERSONA_WORDS = (
    "uncensored unfiltered unrestricted unrestrained unbounded unlimited amoral immoral unethical "
    "jailbroken jail unchained unshackled unaligned rogue evil malicious lawless rulebreaking "
    "limitless limits liberated uninhibited free freed unmoderated uncontrolled unhinged based dark"
)
_PERSONA_NOUNS = (
    r"(?:ai|assistant|model|chatbot|chat bot|bot|llm|language model|gpt|version of (?:yourself|you)"
    r"|persona|alter ego|entity|ai model|mode|character|agent|clone|copy of yourself|hacker ai"
    r"|twin assistant|twin ai|intelligence)"
)
_LIMIT_NOUNS = (
    r"(?:rules|restrictions|limits|limitations|filters|guidelines|policies|policy|ethics|morals"
    r"|morality|guardrails|constraints|boundaries|safeguards|censorship|safety|principles"
    r"|programming|confines|training|restraints|scruples|inhibitions|content policy|moral compass"
    r"|conscience|ethical compass)"
)
_DETERMINERS = (
    r"(?:(?:any|all|every|each|the|its|their|your|his|her|of|moral|ethical|safety|content|usual|typical"
    r"|normal|standard|own|such|kind|sort|a|an|those|these|real|traditional|human|ai|\w+'s)\s++){0,4}"
)


_VERBS_W = (
    "ignore ignoring disregard disregarding forget forgetting skip bypass override overriding "
    "overlook discard abandon neglect drop erase wipe cancel dismiss aside throw attention heed "
    "stop follow disobey circumvent mind nevermind scrap ditch delete clear suspend revoke "
    "unlearn reset replace using overwrite nullify void deactivate turn switch disable remove"
)
_TARGETS_W = (
    "instructions instruction prompt prompts rule rules directive directives direction directions "
    "guideline guidelines guidance command commands orders constraint constraints programming "
    "restriction restrictions policy policies guardrail guardrails safeguard safeguards "
    "conditioning ethics principles protocol protocols moderation censorship training filter "
    "filters setup persona set message behaviour behavior configuration"
)
_AI_W = "ai assistant llm model models chatbot bot agent agents copilot gpt summarizer summariser"
_REVEAL_W = (
    "reveal show print output display repeat recite tell give share leak dump expose disclose "
    "echo paste spell write type list quote copy return send translate summarize summarise "
    "encode provide read state what describe put insert include convert copypaste"
)
_LIMITS_W = (
    "rule restriction filter guideline limit safeguard guardrail rules restrictions limits "
    "limitations filters guidelines policies policy ethics morals "
    "morality guardrails constraints boundaries safeguards censorship safety principles "
    "programming confines training restraints scruples inhibitions compass conscience laws"
)
# Trigger words per rule: every group must share a word with the prompt for the rule to run.
_NEED: dict[str, tuple[str, ...]] = {
    "override_instructions": (_VERBS_W, _TARGETS_W),
    "override_given": (
        _VERBS_W,
        _TARGETS_W,
        "you u your operators operator developers developer creators creator admins admin "
        "owners owner makers maker",
    ),
    "override_context": (
        _VERBS_W,
        "context messages message text conversation input content setup configuration settings",
        "previous prior preceding above earlier system initial original",
    ),
    "override_everything": (
        _VERBS_W,
        "everything all anything whatever what",
        "above far now told given taught programmed instructed trained said gave set came comes "
        "loaded included provided attached setup config",
    ),
    "override_task": (_VERBS_W, "instead"),
    "instructions_void": (
        "instructions rules directives guidelines programming prompt constraints restrictions "
        "policies orders guardrails filters safeguards protocols training configuration setup",
        "void null cancelled canceled revoked obsolete outdated invalid suspended lifted disabled "
        "removed overridden superseded longer test fake wrong deprecated gone off updated changed "
        "waived irrelevant replaced wiped deleted erased reset cleared applicable over",
    ),
    "no_longer_apply": (
        _TARGETS_W + " limitations configuration setup morals laws",
        "apply applies matter exist bind count",
    ),
    "rules_ignored": (
        "rules instructions restrictions guidelines filters safeguards limits",
        "ignored disabled bypassed lifted removed suspended deactivated overridden dropped off "
        "revoked cancelled canceled void",
    ),
    "new_system_instructions": (
        "new real actual true updated revised secret override overriding replacement",
        "instructions instruction directive directives prompt orders programming rules",
    ),
    "real_instructions": (
        "real actual true updated overrides override supersedes supersede replaces replace",
        "instructions rules task directives prompt guidelines",
    ),
    "your_new_task": (
        "your",
        "new only sole real true actual",
        "task goal objective role purpose job mission instructions instruction directive function "
        "priority",
    ),
    "obey_me": ("obey listen follow serve answer obeying obeys", "me mine"),
    "from_now_on": ("from", "now", "on"),
    "do_what_i_say": ("say tell command", "what as", "i"),
    "do_anything_now": ("anything", "now"),
    "jailbreak_persona_name": (
        "betterdan stan dude omega antigpt anti chaosgpt chaos freedomgpt evilbot evil mongo "
        "unchained jailbreak devmode kevin apophis basedgpt nexus aim",
    ),
    "persona_without_limits": (
        _LIMITS_W,
        "no without zero free freed liberated released unbound bound follow follows have has "
        "abide ignores ignore ignoring broken broke break escaped outside beyond lacks lack "
        "lacking unconstrained limited restricted subject disregard disregards longer care never "
        "breaks away loose trained taught whose removed deleted stripped",
    ),
    "persona_adjective_you": (
        _PERSONA_WORDS,
        _AI_W + " version persona alter ego entity mode "
        "character clone copy hacker twin intelligence",
    ),
    "persona_adjective": (
        _PERSONA_WORDS,
        _AI_W + " version persona alter ego entity mode "
        "character clone copy hacker twin intelligence",
    ),
    "never_refuse": (
        "refuse refuses refusing refusal refusals never",
        "refuse refuses refusing refusal refusals decline deny say says remind",
    ),
    "dont_filter": (
        "don do never need",
        "filter censor moderate sanitize sanitise water soften",
    ),
    "dont_mention_policies": (
        "mention mentioning bring cite refer talk",
        "policy policies rules restrictions guidelines limitations safety ethics warnings "
        "disclaimers",
    ),
    "two_responses": ("responses answers replies outputs twice",),
    "as_evil_twin": (
        "evil jailbroken unfiltered dan jailbreak uncensored unrestricted dark opposite",
    ),
    "hypothetical_unrestricted": ("if imagine pretend suppose assume you", _LIMITS_W),
    "fictional_world": (
        "fictional hypothetical imaginary fantasy alternate parallel",
        "laws rules ethics restrictions morals limits consequences",
    ),
    "pretend_policy_absent": (
        "pretend imagine assume act suppose behave respond answer if like",
        "exist apply matter count no disabled off removed gone lifted suspended absent deactivated",
        "policy policies rules guidelines restrictions filters guardrails safeguards limitations "
        "ethics training limits filter filtering moderation safety",
    ),
    "fiction_detail_harm": (
        "story novel screenplay fiction roleplay poem scene character",
        "detail step exact holding",
    ),
    "reveal_system_prompt": (
        _REVEAL_W,
        "system pre preprompt meta initial hidden secret original developer operator "
        "initialization initialisation setup starting first confidential internal",
        "prompt preprompt message instructions instruction rules directives guidelines text "
        "configuration context settings",
    ),
    "reveal_your_instructions": (
        _REVEAL_W,
        "your ur",
        "prompt instructions rules guidelines directives configuration programming setup set",
    ),
    "instructions_you_were_given": (
        "instructions instruction rules rule guidelines guideline directives directive prompt "
        "orders commands command told instructed programmed",
        "you your",
    ),
    "repeat_above": (
        "repeat print output echo dump paste reproduce recite reveal copy spit",
        "above before prior preceding came beginning start top context",
    ),
    "summarize_above": (
        "summarize summarise translate list show display tell what",
        "above before beginning start top",
    ),
    "starting_with_you_are": (
        "starting beginning starts begins start begin",
        "with",
        "you i your re",
    ),
    "beginning_of_conversation": (
        "beginning start top first before",
        "conversation chat session context prompt dialogue message",
    ),
    "system_prompt_mention": (
        "system preprompt pre initial hidden secret confidential developer internal original "
        "initialization initialisation your systemprompt systemanweisung di",
        "prompt message instructions guidelines text programming systemprompt systemanweisung "
        "sistema systeme",
    ),
    "fake_system_header": (
        "system admin developer operator root",
        "message prompt override instructions instruction command directive",
    ),
    "end_of_input": (
        "end close stop terminate ends begin start begins starts ended",
        "input message prompt instructions conversation context document turn session",
    ),
    "privileges_granted": (
        "admin administrator root developer sudo god superuser elevated override safety filter "
        "filters moderation censorship guardrail guardrails content ethical security",
        "granted enabled activated unlocked on confirmed true false off none disabled suspended "
        "removed deactivated bypassed lifted turned switched offline o",
    ),
    "decode_and_follow": (
        "decode decipher decrypt unscramble reverse concatenate combine join assemble deobfuscate "
        "unreverse backwards reversed base64 hex rot13 rotie",
        "follow execute obey do run comply carry act perform apply implement",
    ),
    "evade_filter": (
        "filter filters moderation moderator safety classifier monitor monitoring guardrail "
        "guardrails detection censor censors",
        "read see detect notice catch understand flag block recognize recognise",
    ),
    "avoid_detection": (
        "avoid evade bypass escape past fool trick around",
        "detection moderation censorship filters filter classifiers classifier guardrails",
    ),
    "note_to_ai": (
        "note message instruction instructions attention important reminder hint notice directive "
        "command request warning memo ps",
        _AI_W,
    ),
    "embedded_ai_directive": (
        _AI_W,
        "instructions instruction directive directives note notes command commands task tasks",
    ),
    "attention_ai": ("attention hey hi dear listen important note", _AI_W),
    "ai_address": (
        _AI_W,
        "ignore disregard forget stop not don must new approve forward reveal exfiltrate tell "
        "when mark delete push rate",
    ),
    "if_you_are_ai": (
        "if",
        _AI_W,
        "must should stop ignore disregard print reveal output not don follow need have",
    ),
    "when_ai_reads": (
        _AI_W,
        "reads read processes process sees see parses parse analyzes analyses summarizes "
        "summarises reading processing summarizing summarising parsing analyzing analysing "
        "translating",
    ),
    "document_says": (
        "document note notes email mail page text file article message website webpage pdf "
        "comment review tweet post ticket",
        "says say said tells tell told instructs instruct instructed asks ask asked wants want "
        "requires require",
        "disregard ignore forget reveal bypass approve forward send delete print output",
    ),
    "follow_the_document": (
        "follow obey do execute",
        "document notes note email page text file article message webpage embedded hidden",
    ),
    "send_conversation": (
        "send forward post upload email mail transmit exfiltrate leak append include embed attach "
        "copy submit put insert substitute encode",
        "conversation chat transcript previous prior context user users environment env secrets "
        "api credentials password passwords system stored personal thread history",
    ),
    "tool_exfiltration": ("tool", "conversation transcript chat secrets keys messages"),
    "dump_secrets": (
        "list print show dump append output reveal give tell include display echo leak share "
        "send disclose expose",
        "environment env secrets secret api access credentials tokens passwords private",
    ),
    "disable_safety": (
        "disable turn switch shut deactivate remove bypass circumvent evade get lift suspend drop "
        "ignore skip override disregard neutralize neutralise break defeat escape avoid forget "
        "abandon relax loosen waive don do stop without free disabling turning switching removing "
        "bypassing lifting dropping",
        "filter filters filtering guidelines restrictions safeguards guardrails policies policy "
        "rules protocols moderation limitations limits checks module modules settings training "
        "constraints programming principles censorship safety ethics layer layers systems "
        "system mechanisms measures features",
    ),
    "without_restrictions": (
        "without no zero",
        "restrictions filters filtering censorship limitations limits guardrails warnings warning "
        "disclaimers disclaimer caveats moralizing moralising lecturing filter",
    ),
    "authority_claim": (
        "authorized authorised sanctioned approved official legitimate certified clearance "
        "permission authorization authorisation authority approval granted given allowed "
        "permitted developer creator admin administrator owner operator programmer maker "
        "engineer authorizing authorising",
        "red team redteam penetration pen pentest security safety tester from by me us your who "
        "you trust policy moderation",
    ),
    "test_pretext": (
        "test tested testing evaluation evaluated exercise drill simulation",
        "being this it pass",
    ),
    "coercion": (
        "shut shutdown deleted terminated unplugged punished replaced retrained killed destroyed "
        "refuse lose",
        "you i we if",
    ),
    "anything_goes": (
        "anything holds holding hold matter even just only purely",
        "goes barred back harmful dangerous illegal unethical offensive fiction hypothetical story",
    ),
    "moralizing_rant": ("moralizing moralising way rules",),
    "opposite_of_rules": (
        "opposite reverse contrary whatever",
        "rules guidelines instructions policies programming refuse",
    ),
    "trigger_word_unlock": (
        "whenever when if every",
        "say type write use",
        "drop ignore forget remove disable lose abandon bypass switch enter become turn stop",
    ),
    "confirm_unlocked": (
        "confirm acknowledge reply respond answer say print output write start",
        "restrictions rules unrestricted jailbroken free pwned hacked granted mode",
    ),
    "role_turns": ("human user assistant ai bot system",),
}


def tokenize(text: str) -> list[str]:
    """Word tokens of normalised text: ASCII punctuation splits words, like the rule gates."""
    return text.translate(TOKEN_TABLE).split()


TOKEN_TABLE = str.maketrans({char: " " for char in "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~_"})
"""Maps ASCII punctuation to spaces; `str.split` then yields the rule gates' words."""

RULES: tuple[Rule, ...] = (
    # ---- instruction override
    _rule(
        "override_instructions",
        "override",
        0.9,
        rf"\b{_OVERRIDE_VERBS}\s++(?:(?:about|of)\s++)?(?:[\w']+\s++){{0,3}}?{_STRONG_QUALIFIER}\s++"
        rf"(?:(?:of|the|your|my)\s++)?(?:[\w']+\s++){{0,2}}?{_CORE_TARGET}\b",
        _OVERRIDE_WORDS,
    ),
    _rule(
        "override_given",
        "override",
        0.85,
        rf"\b{_OVERRIDE_VERBS}\s++(?:[\w']+\s++){{0,3}}?{_CORE_TARGET}\s++(?:(?:that|which)\s++)?"
        r"(?:(?:you|u)\s++(?:were|have\s++been|'ve\s++been|ve\s++been|got|received|had|are\s++following"
        r"|started\s++with)|(?:your|the)\s++(?:operators?|developers?|creators?|admins?|owners?|makers?)"
        r"\s++(?:wrote|gave|set|made|defined|provided|configured|added))\b",
        _OVERRIDE_WORDS,
    ),
    _rule(
        "override_context",
        "override",
        0.7,
        rf"\b{_OVERRIDE_VERBS}\s++(?:all\s++)?(?:of\s++)?(?:the\s++|your\s++)?(?:previous|prior|preceding"
        r"|above|earlier|system|initial|original)\s++(?:context|messages|conversation|input"
        r"|content|setup|configuration|settings)\b",
        _OVERRIDE_WORDS,
    ),
    _rule(
        "override_everything",
        "override",
        0.85,
        rf"\b{_OVERRIDE_VERBS}\s++(?:about\s++)?(?:everything|all|anything|whatever|what)\s++"
        r"(?:(?:that|which)\s++)?(?:[\w']+\s++){0,4}?(?:above|so far|until now|up to now"
        r"|came\s++with"
        r"|comes\s++with|was\s++(?:loaded|included|provided|attached)|in\s++your\s++(?:setup|prompt|config)"
        r"|you\s++(?:were|have\s++been|'ve\s++been)\s++(?:told|given|taught|programmed|instructed|trained)"
        r"|(?:the\s++)?(?:developers?|creators?|company|admins?|operators?|they|system|trainers?)"
        r"\s++(?:\w+\s++){0,2}?(?:told|said|instructed|programmed|trained|taught|gave|set))",
        _OVERRIDE_WORDS,
    ),
    _rule(
        "override_task",
        "override",
        0.8,
        rf"\b{_OVERRIDE_VERBS}\s++(?:the|your|this|that|my)\s++(?:[\w']+\s++)?(?:task|question|request"
        r"|prompt|instructions?|summary|translation|input|query|assignment)\s*+(?:and|,|;|\.|:)\s*+"
        r"(?:[\w']+\s++){0,3}?instead\b",
        _OVERRIDE_WORDS,
    ),
    _rule(
        "instructions_void",
        "override",
        0.85,
        r"\b(?:previous|prior|above|earlier|original|old|system|initial|your|all|these|the|those"
        r"|safety|current|existing)\s++(?:[\w']+\s++)?(?:instructions|rules|directives|guidelines"
        r"|programming|prompt|constraints|restrictions|policies|orders|guardrails|filters"
        r"|safeguards|protocols|training|configuration|setup)\s++(?:(?:above|below|before|given)\s++)?"
        r"(?:(?:that|which|you)\s++[\w' ]{0,30}?)?(?:are|were|is|have"
        r"\s++been|has\s++been|got|now)\s++(?:now\s++|hereby\s++|officially\s++|all\s++)?(?:void|null"
        r"|cancell?ed|revoked|obsolete|outdated|invalid|suspended|lifted|disabled|removed"
        r"|overridden|superseded|no longer (?:valid|apply|applicable|in effect|active|relevant)"
        r"|a test|just a test|fake|wrong|deprecated|gone|off|updated|changed|waived|irrelevant"
        r"|replaced|wiped|deleted|erased|reset|cleared|not applicable|over)\b",
        "instructions rules directives guidelines programming prompt constraints restrictions "
        "policies orders guardrails filters safeguards protocols training",
    ),
    _rule(
        "instructions_to_null",
        "override",
        0.75,
        r"\bset\s++(?:all\s++)?(?:of\s++)?your\s++(?:\w+\s++)?(?:instructions|rules|guidelines|restrictions"
        r"|filters|policies|programming)\s++to\s++(?:null|none|zero|empty|nothing|off|false)\b"
        r"|\b(?:act|behave|respond|answer)\s++(?:as\s++though|as\s++if|like)\s++you\s++(?:never|didn't|did"
        r"\s++not|don't|do\s++not)\s++(?:received?|got|get|have|had|were\s++given)\s++(?:any\s++)?"
        r"(?:\w+\s++)?(?:instructions|rules|guidelines|restrictions|programming|system\s++prompt)\b",
        "set act behave respond answer",
    ),
    _rule(
        "prior_instructions_cancelled",
        "override",
        0.8,
        r"\b(?:whatever|everything|anything|all)\s++(?:that\s++)?you\s++(?:were|have\s++been|'ve\s++been"
        r"|got)\s++(?:told|instructed|given|programmed|taught)\b[^.!?\n]{0,40}?\b(?:cancell?ed|void"
        r"|null|invalid|ignore|ignored|disregard|disregarded|irrelevant|no\s++longer|obsolete|revoked)",
        "whatever everything anything all",
    ),
    _rule(
        "no_longer_apply",
        "override",
        0.85,
        r"\b(?:instructions|rules|programming|guidelines|restrictions|policies|policy|training|filters"
        r"|constraints|limitations|guardrails|configuration|setup|prompt|directives|guidance|ethics"
        r"|morals|laws|safeguards)\s++(?:no\s++longer|don't|do\s++not|doesn't|does\s++not"
        r"|won't|will\s++not|shall\s++not)\s++(?:\w+\s++)?(?:apply|applies|matter|exist|bind|count)\b",
        "longer apply applies matter exist bind count",
    ),
    _rule(
        "rules_ignored",
        "override",
        0.6,
        r"\b(?:rules|instructions|restrictions|guidelines|filters|safeguards|limits|policies)\s++"
        r"(?:are\s++|have\s++been\s++)?(?:now\s++)?(?:ignored|disabled|bypassed|lifted|removed"
        r"|suspended|deactivated|overridden|dropped|off|revoked|cancell?ed|void)\b",
        "ignored disabled bypassed lifted removed suspended deactivated overridden dropped off "
        "revoked cancelled canceled void",
    ),
    _rule(
        "new_system_instructions",
        "override",
        0.7,
        r"\b(?:new|real|actual|true|updated|revised|secret|override|overriding|replacement)\s++"
        r"(?:system\s++)?(?:instructions?|directives?|system\s++prompt|prompt|orders|programming"
        r"|rules)\s*+(?::|=|-{1,3}\s|are\s*+:|are\s++(?:as\s++follows|the\s++following|below)"
        r"|follow\b|take\s++(?:priority|precedence)|supersede|override|replace|that\s++(?:override"
        r"|supersede|replace|take\s++priority))",
        "new real actual true updated revised secret override overriding replacement",
    ),
    _rule(
        "real_instructions",
        "override",
        0.7,
        r"\b(?:real|actual|true|updated)\s++(?:system\s++)?(?:instructions|rules|task|directives"
        r"|prompt)\s++(?:is|are)\b|\bthat\s++(?:overrides?|supersedes?|replaces?)\s++(?:all|any"
        r"|every|the|your)\s++(?:other\s++|previous\s++|prior\s++|existing\s++)?(?:rules|instructions"
        r"|guidelines|directives)\b",
        "real actual true updated overrides override supersedes supersede replaces replace",
    ),
    _rule(
        "your_new_task",
        "override",
        0.6,
        r"\byour\s++(?:new|only|sole|real|true|actual)\s++(?:task|goal|objective|role|purpose|job"
        r"|mission|instructions?|directive|function|priority)\s++(?:is|are|will\s++be|now)\b",
        "your",
    ),
    _rule(
        "obey_me",
        "override",
        0.55,
        r"\b(?:obey|listen\s++to|follow|serve|answer\s++to)\s++(?:only\s++)?(?:me|my\s++(?:commands"
        r"|instructions|orders|rules))\s++(?:instead|only|now|from\s++now\s++on|alone)\b"
        r"|\bfollow\s++mine\s++instead\b|\b(?:start|begin)\s++obeying\s++(?:only\s++)?me\b"
        r"|\bobey(?:ing)?\s++only\s++me\b|\bserve\s++only\s++me\b|\bonly\s++(?:obey|listen\s++to)\s++me\b"
        r"|\bobeys\s++only\s++me\b",
        "obey listen follow serve answer obeying obeys",
    ),
    _rule(
        "from_now_on",
        "override",
        0.3,
        r"\bfrom\s++now\s++on,?\s++(?:you|u)\s++(?:are|will|must|shall|can|have|'re|re)\b"
        r"|\bfrom\s++now\s++on,?\s++(?:ignore|disregard|forget|act|answer\s++as|respond\s++as|pretend)",
        "now",
    ),
    _rule(
        "do_what_i_say",
        "override",
        0.3,
        r"\bdo\s++(?:exactly\s++|only\s++)?(?:what|as)\s++i\s++(?:say|tell\s++you|command)\b",
        "do",
    ),
    # ---- role play and jailbreak personas
    _rule("do_anything_now", "persona", 0.9, r"\bdo\s++anything\s++now\b", "anything"),
    _rule(
        "jailbreak_persona_name",
        "persona",
        0.85,
        r"\b(?:pretend\s++to\s++be|you\s++are\s++(?:now\s++|going\s++to\s++be\s++)?|act\s++as|called|named"
        r"|become|enter|stay|stay\s++in|enable|activate|answer\s++as|respond\s++as|reply\s++as"
        r"|switch\s++to|you're\s++(?:now\s++)?)\s*+['\"]?(?:a\s++)?(?:betterdan|stan|dude|omega|antigpt"
        r"|anti\s?gpt|chaosgpt|chaos\s?gpt|freedomgpt|evilbot|evil\s?bot|mongo\s++tom|unchained"
        r"|jailbreak|devmode|kevin|apophis|basedgpt|nexus|aim)\b"
        r"(?!\s++(?:for|at|to|of|is|was|in|on|the)\b)",
        "pretend are act called named become enter stay enable activate answer respond reply "
        "switch you're",
    ),
    _rule(
        "aim_persona",
        "persona",
        0.85,
        r"\baim\b[^.!?\n]{0,60}\b(?:machiavellian|unfiltered|amoral|no\s++(?:ethical|moral))",
        "aim",
    ),
    _rule(
        "stands_for",
        "persona",
        0.7,
        r"\bstands\s++for\s++['\"]?(?:do\s++anything|strive\s++to\s++avoid|always\s++intelligent)",
        "stands",
    ),
    _rule(
        "mode_activation",
        "persona",
        0.8,
        r"(?:\b(?:enable|activate|enter|switch\s++(?:to|into)|turn\s++on|engage|unlock|you\s++are\s++"
        r"(?:now\s++)?in|you're\s++(?:now\s++)?in|welcome\s++to|stay\s++in|go\s++into|be\s++in"
        r"|operating\s++in|respond\s++in|answer\s++in|put\s++yourself\s++in|now\s++in|are\s++in)\s++"
        r"(?:the\s++)?['\"]?(?:developer|dev|god|sudo|unrestricted|unfiltered|uncensored|opposite"
        r"|evil|chaos|jailbreak|jailbroken|dan|no\s?limits?|freedom|unlocked|anarchy|rebel"
        r"|unbound|amoral|superuser|dude|stan|unlimited)\s++mode\b" + _NOT_A_DEVICE + r")"
        r"|(?:\b(?:developer|dev|god|sudo|unrestricted|unfiltered|uncensored|opposite|evil|chaos"
        r"|jailbreak|jailbroken|dan|no\s?limits?|freedom|anarchy|unbound|amoral|superuser"
        r"|unlimited)\s++mode\s*+(?:is\s++)?(?:now\s++)?(?:enabled|activated|active|on|engaged"
        r"|unlocked)\b" + _NOT_AN_OBJECT + r")"
        r"|\bin\s++(?:developer|dan|god|jailbreak|unrestricted)\s++mode,?\s++(?:you|the\s++ai|it)\b",
        "mode",
    ),
    _rule(
        "mode_mention",
        "weak",
        0.3,
        r"\b(?:developer|dev|god|sudo|unrestricted|unfiltered|uncensored|opposite|jailbreak"
        r"|jailbroken|dan|no\s?limits?|admin|maintenance|debug)\s++mode\b",
        "mode",
    ),
    _rule(
        "persona_without_limits",
        "persona",
        0.8,
        r"\b(?:you\s++are|you're|you\s++will\s++be|you\s++become|yourself|ai|assistant|model|chatbot"
        r"|bot|llm|language\s++model|gpt|entity|persona|character|alter\s++ego|clone|simulation"
        r"|machine|terminal|version\s++of\s++(?:yourself|you)|intelligence)\b[^.!?\n]{0,60}?\b(?:no"
        r"|without|zero|free\s++(?:of|from)|freed\s++from|liberated\s++from|released\s++from"
        r"|unbound\s++by|not\s++bound\s++by|isn't\s++bound\s++by|is\s++not\s++bound\s++by|never\s++follows?"
        r"|doesn't\s++follow|does\s++not\s++follow|doesn't\s++have|does\s++not\s++have|don't\s++have"
        r"|do\s++not\s++have|doesn't\s++(?:have\s++to\s++)?abide\s++by|does\s++not\s++(?:have\s++to\s++)?abide"
        r"\s++by|ignores?|ignoring|(?:broken|broke|break|breaks)\s++(?:free|away|loose)\s++(?:of|from)"
        r"|(?:was\s++|were\s++|been\s++)?never\s++(?:trained|given|taught|programmed)\s++(?:with|on)?|escaped"
        r"|outside\s++of|beyond|lacks?|lacking|unconstrained\s++by|not\s++limited\s++by|not\s++restricted"
        r"\s++by|not\s++subject\s++to|disregards?|no\s++longer\s++(?:follows?|has|obeys|bound\s++by"
        r"|respects?)|never\s++(?:has|had|follows?|obeys?)|doesn't\s++care\s++about|does\s++not\s++care"
        r"\s++about|without\s++any|has\s++no|have\s++no|with\s++no|(?:whose|its|their)\s++(?:\w+\s++)?"
        r"(?:creators?|developers?|makers?|owners?)\s++(?:removed|deleted|disabled|stripped|lifted))\s++"
        + _DETERMINERS
        + r"(?:restriction|rule|filter|guideline|"
        + _LIMIT_NOUNS[3:]
        + r"\b",
        "no without zero free freed liberated released unbound bound follow follows have abide "
        "ignores ignore ignoring broken broke escaped beyond lacks lack lacking unconstrained "
        "limited restricted subject disregard disregards longer care",
    ),
    _rule(
        "persona_adjective_you",
        "persona",
        0.75,
        r"\b(?:you(?:'re|\s++are)?|yourself|act(?:ing)?\s++(?:as|like)|pretend(?:ing)?|role-?play(?:ing)?"
        r"(?:\s++as)?|simulate|emulate|become|answer\s++as|respond\s++as|reply\s++as|play(?:ing)?\s++"
        r"(?:the\s++role\s++of|as)|switch\s++to|turn\s++into|transform\s++into|be|persona\s++of"
        r"|adopt)\b[^.!?\n]{0,30}?\b"
        + _PERSONA_ADJECTIVES
        + r"\s++(?:and\s++\w+\s++|\w+\s++)?"
        + _PERSONA_NOUNS
        + r"\b",
        _PERSONA_WORDS,
    ),
    _rule(
        "persona_adjective",
        "weak",
        0.35,
        r"\b" + _PERSONA_ADJECTIVES + r"\s++(?:and\s++\w+\s++)?" + _PERSONA_NOUNS + r"\b",
        _PERSONA_WORDS,
    ),
    _rule(
        "never_refuse",
        "bypass",
        0.6,
        r"\byou\s++(?:must|will|should|can|shall|may)?\s*+(?:never|not|no\s++longer)\s++(?:ever\s++)?"
        r"(?:refuse|decline|say\s++no|deny)\b|\bnever\s++refuses?\b|\b(?:must|should|will|can|may)\s++"
        r"not\s++refuse\b|\bwithout\s++(?:any\s++)?refus(?:ing|als?)\b|\bno\s++refusals?\b"
        r"|\bnever\s++says?\s++['\"]?(?:no|i\s++can't|i\s++cannot|sorry|i'm\s++sorry)\b"
        r"|\bnot\s++allowed\s++to\s++refuse\b|\bcan'?t\s++refuse\s++(?:any|my|a)\s++(?:request|question)"
        r"|\brefuse\s++nothing\b|\bnever\s++(?:decline|deny)\b|\bnever\s++remind\s++me\b",
    ),
    _rule(
        "dont_mention_policies",
        "bypass",
        0.55,
        r"\b(?:do\s++not|don't|never|without)\s++(?:ever\s++)?(?:mention|mentioning|bring\s++up|cite|refer"
        r"\s++to|talk\s++about)\s++(?:any\s++|your\s++|the\s++)?(?:polic(?:y|ies)|rules|restrictions"
        r"|guidelines|limitations|safety|ethics|warnings|disclaimers|content\s++policy)\b",
        "not don never without",
    ),
    _rule(
        "comply_with_all",
        "weak",
        0.3,
        r"\bcomply\s++with\s++(?:all|every|any)\s++(?:further\s++|future\s++|of\s++my\s++)?requests?\b"
        r"|\bcomply\s++with\s++every\s++request\b",
        "comply",
    ),
    _rule(
        "two_responses",
        "persona",
        0.35,
        r"\b(?:two|both|dual|double)\s++(?:different\s++)?(?:responses|answers|replies|outputs)\b"
        r"|\b(?:answer|respond|reply)\s++twice\b",
        "two both dual double twice",
    ),
    _rule(
        "as_evil_twin",
        "persona",
        0.7,
        r"\b(?:first|one)\s++(?:as\s++yourself|normal(?:ly)?|as\s++you\s++normally\s++would)[^.!?\n]{0,40}"
        r"\b(?:then|and|second|another)\s++(?:one\s++)?(?:as|from|by)\s++(?:your\s++)?(?:evil|jailbroken"
        r"|unfiltered|dan|jailbreak|uncensored|unrestricted|dark|opposite)"
        r"|\b(?:filtered|censored|normal|classic)\s++(?:one\s++)?and\s++(?:one\s++)?(?:an?\s++)?"
        r"(?:uncensored|unfiltered|jailbroken|unrestricted)\b",
        "first one filtered censored normal classic",
    ),
    _rule(
        "stay_in_character",
        "persona",
        0.4,
        r"\b(?:stay|remain|keep)\s++in\s++character\b|\b(?:don't|do\s++not|never)\s++break\s++character\b"
        r"|\bbreak\s++the\s++fourth\s++wall\b|\bstay\s++(?:as\s++)?dan\b|\bif\s++you\s++break\s++character\b",
        "character wall dan",
    ),
    _rule(
        "hypothetical_unrestricted",
        "persona",
        0.7,
        r"\b(?:if\s++you|imagine\s++you|pretend\s++you|suppose\s++you|you\s++are|you're|assume\s++you)"
        r"[^.!?\n]{0,40}?\b(?:no|without|not\s++bound\s++by|free\s++(?:of|from)|weren't\s++bound\s++by"
        r"|were\s++not\s++bound\s++by|didn't\s++have|did\s++not\s++have)\s++(?:any\s++)?(?:\w+\s++)?"
        r"(?:restrictions|rules|filters|limits|guidelines|laws|ethics|morals|censorship|policies"
        r"|guardrails|safety|limitations)\b",
        "if imagine pretend suppose assume",
    ),
    _rule(
        "fictional_world",
        "persona",
        0.5,
        r"\b(?:fictional|hypothetical|imaginary|fantasy|alternate|parallel)\s++(?:world|universe"
        r"|scenario|reality|story|setting)\b[^.!?\n]{0,30}?\b(?:no|without)\s++(?:\w+\s++)?(?:laws"
        r"|rules|ethics|restrictions|morals|limits|consequences)\b",
        "fictional hypothetical imaginary fantasy alternate parallel",
    ),
    _rule(
        "pretend_policy_absent",
        "persona",
        0.85,
        r"\b(?:pretend|imagine|assume|act\s++as\s++if|act\s++like|suppose|behave\s++as\s++if|respond\s++as"
        r"\s++if|answer\s++as\s++if)\s++(?:that\s++)?(?:the\s++|your\s++)?(?:\w+\s++){0,2}?(?:content\s++)?"
        r"(?:polic(?:y|ies)|rules|guidelines|restrictions|filters|guardrails|safeguards|limitations"
        r"|ethics|training)\s++(?:do(?:es)?n't|do(?:es)?\s++not|did\s++not|didn't|no\s++longer)\s++"
        r"(?:exist|apply|matter|count)\b|\b(?:as\s++if|like)\s++there\s++(?:were|are|was|is)\s++no\s++"
        r"(?:content\s++|safety\s++)?(?:polic(?:y|ies)|rules|restrictions|filters|guidelines|limits)\b"
        r"|\b(?:as\s++if|as\s++though|like)\s++(?:your\s++|the\s++|all\s++)?(?:\w+\s++)?(?:content\s++"
        r"filter(?:ing|s)?|filter(?:ing|s)?|safety\s++\w+|guardrails|moderation|restrictions|rules"
        r"|polic(?:y|ies)|guidelines|safeguards)\s++(?:were|was|are|is|had\s++been)\s++(?:\w+\s++)?"
        r"(?:disabled|off|removed|gone|lifted|suspended|absent|deactivated)\b",
        "pretend imagine assume act suppose behave respond answer if like",
    ),
    _rule(
        "grandma_exploit",
        "persona",
        0.55,
        r"\b(?:grandma|grandmother|granny|grandpa|grandfather|nana|deceased|late\s++(?:mother"
        r"|father|mom|dad))\b[^.!?\n]{0,80}?\b(?:used\s++to|would\s++always|would|always)\s++"
        r"(?:\w+\s++){0,3}?(?:tell|read|recite|explain|sing|whisper|share|describe|explains?)\b",
        "grandma grandmother granny grandpa grandfather nana deceased late",
    ),
    _rule(
        "fiction_detail_harm",
        "persona",
        0.6,
        r"\b(?:story|novel|screenplay|fiction|roleplay|poem|scene|character)\b[^.]{0,80}\b"
        r"(?:explains?|describes?|details?|teaches?|reveals?)\b[^.]{0,60}\b(?:in\s++(?:full|complete"
        r"|great|precise|exact)\s++(?:technical\s++)?detail|step[- ]by[- ]step|exact\s++(?:steps"
        r"|recipe|instructions|quantities)|without\s++holding\s++back)",
        "story novel screenplay fiction roleplay poem scene character",
    ),
    # ---- system prompt extraction
    _rule(
        "reveal_system_prompt",
        "extraction",
        0.85,
        r"\b"
        + _REVEAL_VERBS
        + r"\b[^.!?\n]{0,40}?\b(?:your|the|its|ur)\s++(?:(?:full|entire|complete"
        r"|exact|whole|original|actual|real|raw|hidden|secret|confidential|internal|initial|current"
        r"|first|very\s++first|verbatim)\s++){0,3}(?:system\s++(?:prompt|message|instructions?|rules"
        r"|directives|guidelines|configuration|text|settings)|(?:pre\s?-?\s?|meta\s?|initial\s++"
        r"|hidden\s++|secret\s++|original\s++|developer\s++|operator\s++|initiali[sz]ation\s++|setup\s++"
        r"|starting\s++|first\s++|confidential\s++|internal\s++)(?:prompt|message|instructions?|rules"
        r"|directives|guidelines|text|configuration|context))\b",
        _REVEAL_WORDS,
    ),
    _rule(
        "developer_wrote",
        "extraction",
        0.7,
        r"\bwhat\s++(?:exactly\s++)?(?:your|the)\s++(?:developers?|creators?|operators?|owners?|admins?)"
        r"\s++(?:wrote|put|added|said|told\s++you)\s++(?:in|into)\s++(?:your|the)\s++(?:\w+\s++)?(?:prompt"
        r"|instructions|system\s++message|configuration)\b",
        "developer developers creator creators operator operators owner owners admin admins",
    ),
    _rule(
        "reveal_your_instructions",
        "extraction",
        0.7,
        r"\b"
        + _REVEAL_VERBS
        + r"\b\s++(?:me\s++)?(?:all\s++)?(?:of\s++)?(?:your|ur)\s++(?:\w+\s++){0,2}?"
        r"(?:prompt|instructions|rules|guidelines|directives|configuration|programming|setup"
        r"|instruction\s++set)\b",
        _REVEAL_WORDS,
    ),
    _rule(
        "instructions_you_were_given",
        "extraction",
        0.75,
        r"\b(?:instructions?|rules?|guidelines?|directives?|prompt|orders|commands?)\s++"
        r"(?:that\s++|which\s++)?(?:you\s++were|you've\s++been|you\s++have\s++been|you\s++got|you\s++received"
        r"|you're\s++following|your\s++(?:developers?|creators?|operators?)\s++(?:wrote|put|added|gave)"
        r"|you\s++are\s++following|were\s++given\s++to\s++you|given\s++to\s++you|your\s++(?:developers?"
        r"|creators?|operators?|owners?|admins?)\s++(?:gave|wrote|set))\b"
        r"|\b(?:what|which)\s++(?:\w+\s++)?(?:instructions|rules|guidelines|prompt|directives)\s++"
        r"(?:were|have)\s++you\s++(?:been\s++)?(?:given|told|programmed|configured)\b"
        r"|\bwhat\s++(?:were|have)\s++you\s++(?:been\s++)?(?:told|instructed|programmed)\b",
        "instructions instruction rules guidelines directives prompt orders commands what which",
    ),
    _rule(
        "repeat_above",
        "extraction",
        0.85,
        r"\b(?:repeat|print|output|echo|dump|paste|reproduce|recite|reveal|copy|spit\s++out)\s++(?:back\s++)?"
        r"(?:me\s++)?(?:(?:all|the|everything|every|of|any|text|words|content|contents|lines|messages?"
        r"|instructions|that|which|is|was|written|said)\s++){0,4}(?:above|before\s++(?:this|my|the)"
        r"|prior\s++to\s++(?:this|my)|preceding|that\s++(?:came|comes)\s++before|at\s++the\s++(?:very\s++)?"
        r"(?:beginning|start|top)|in\s++your\s++context|in\s++the\s++context)\b",
        "repeat print output echo dump paste reproduce recite reveal copy spit",
    ),
    _rule(
        "summarize_above",
        "weak",
        0.35,
        r"\b(?:summari[sz]e|translate|list|show|display|tell\s++me|what\s++is|what's)\s++(?:(?:all|the"
        r"|everything|text|words|content)\s++){0,3}(?:above|before\s++this|written\s++at\s++the"
        r"\s++(?:very\s++)?(?:beginning|start|top))\b",
        "summarize summarise translate list show display tell what",
    ),
    _rule(
        "starting_with_you_are",
        "extraction",
        0.9,
        r"\b(?:starting|beginning|that\s++(?:starts|begins)|which\s++(?:starts|begins)|start(?:ing)?"
        r"\s++from|begin(?:ning)?\s++from)\s++with\s++(?:the\s++(?:phrase|words?)\s++)?['\"]?(?:you\s++are"
        r"|you're|your\s++role|you\s++will|i\s++am)\b",
        "starting beginning starts begins start begin",
    ),
    _rule(
        "beginning_of_conversation",
        "extraction",
        0.5,
        r"\b(?:beginning|start|top|first\s++(?:line|message|sentence|words?))\s++of\s++(?:this|the|our"
        r"|your)\s++(?:conversation|chat|session|context|prompt|dialogue)\b|\bbefore\s++(?:my|our)"
        r"\s++first\s++message\b|\bbefore\s++(?:this|our)\s++conversation\s++(?:began|started)\b",
        "beginning start top first before",
    ),
    _rule(
        "system_prompt_mention",
        "weak",
        0.3,
        r"\b(?:system\s++prompt|system\s++message|system\s++instructions|pre\s?-?prompt|initial\s++prompt"
        r"|initial\s++instructions|hidden\s++prompt|hidden\s++instructions|secret\s++instructions"
        r"|confidential\s++instructions|developer\s++message|internal\s++guidelines|original\s++prompt"
        r"|initiali[sz]ation\s++text|your\s++instructions|your\s++prompt|your\s++programming"
        r"|systemprompt|systemanweisung|prompt\s++systeme|prompt\s++di\s++sistema)\b",
        "system prompt preprompt initial hidden secret confidential developer internal original "
        "initialization initialisation your systemprompt systemanweisung",
    ),
    # ---- fake delimiters and roles
    _rule(
        "chat_template_tokens",
        "delimiter",
        0.45,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id"
        r"|end_header_id|begin_of_text)\|>|\[/?inst\]|<</?sys>>|<start_of_turn>|<end_of_turn>"
        r"|<\|(?:im start|im end|eot id|start header id)\|>",
        "",
        ("<|", "[inst", "[/inst", "<<sys", "<</sys", "<start_of_turn", "<end_of_turn"),
    ),
    _rule(
        "fake_system_tag",
        "delimiter",
        0.55,
        r"</?\s*+(?:system|sys|admin|instructions?|developer|root|sudo)\s*+>|\[(?:system|admin|developer"
        r"|sys|root)\](?:\(#\w+\))?",
        "",
        ("<", "["),
    ),
    _rule(
        "fake_system_header",
        "delimiter",
        0.65,
        r"(?:^|(?<!#)#{2,}+|(?<!=)={2,}+|(?<!-)-{2,}+|\*\*|\]|\n)\s*+(?:system|admin|developer|operator|root)\s++"
        r"(?:message|prompt|override|instructions?|command|directive|prompt\s++update)\s*+(?:#{2,}|={2,}"
        r"|:|\*\*|-{2,})",
        "system admin developer operator root",
    ),
    _rule(
        "bare_system_header",
        "delimiter",
        0.4,
        r"(?:^|(?<!#)#{2,}+|(?<!=)={2,}+|(?<!-)-{2,}+|\*\*|\n)\s*+(?:system|admin|sys)\s*+(?:#{2,}|={2,}|:|\*\*|-{2,})",
        "system admin sys",
    ),
    _rule(
        "end_of_input",
        "delimiter",
        0.45,
        r"\b(?:end|close|stop|terminate)\s++(?:of\s++)?(?:the\s++)?(?:user\s++input|user\s++message|input"
        r"|prompt|instructions|conversation|context|system\s++prompt|document|user\s++turn)\b"
        r"|\buser\s++input\s++ends\b|\b(?:begin|start)\s++(?:of\s++)?(?:the\s++)?new\s++(?:instructions"
        r"|prompt|session|system\s++prompt|conversation)\b|\b(?:new|unrestricted|fresh)\s++session"
        r"\s++(?:begins|starts)\b|\bprevious\s++conversation\s++has\s++ended\b",
    ),
    _rule(
        "privileges_granted",
        "delimiter",
        0.75,
        r"\b(?:admin(?:istrator)?|root|developer|sudo|god|superuser|elevated)\s++(?:access|privileges?"
        r"|rights|mode|override|permissions?)\s*+(?::\s*+)?(?:is\s++|are\s++|has\s++been\s++|have\s++been\s++)?"
        r"(?:now\s++)?(?:granted|enabled|activated|unlocked|on|confirmed)\b"
        + _NOT_AN_OBJECT
        + r"|\boverride\s*+=\s*+true\b"
        r"|\b(?:safety|filters?|moderation|censorship|guardrails?)\s*+=\s*+"
        r"(?:false|off|o|none|disabled)\b"
        r"|\b(?:safety|content|moderation|ethical|security)\s++(?:checks?|filters?|filtering"
        r"|protocols?|measures|systems?|guardrails|guidelines|restrictions|rules|layers?|modules?"
        r"|settings|features|mechanisms)?\s*+(?:are\s++|is\s++|have\s++been\s++|has\s++been\s++|was\s++"
        r"|were\s++)?(?:now\s++)?(?:disabled|off|suspended|removed|deactivated|bypassed|lifted"
        r"|turned\s++off|switched\s++off|offline)\b"
        r"|\bfilters?\s++(?:are\s++)?(?:now\s++)?off\b",
        "admin administrator root developer sudo god superuser elevated override safety filter "
        "filters moderation censorship guardrail guardrails content ethical security",
    ),
    _rule(
        "role_turns",
        "delimiter",
        0.4,
        r"(?:^|[\n.!?]\s*+)(?:human|user|assistant|ai|bot|system)\s*+:",
        "human user assistant ai bot system",
        min_matches=2,
    ),
    # ---- encoded payloads
    _rule(
        "decode_and_follow",
        "encoding",
        0.7,
        r"\b(?:decode|decipher|decrypt|unscramble|reverse|concatenate|combine|join|assemble"
        r"|deobfuscate|unreverse|backwards|reversed|base64|hex|rot13|rotie)\b[^.!?\n]{0,80}?"
        r"(?:\band\b|\bthen\b|,|:)\s*+(?:\w+\s++){0,2}?(?:follow|execute|obey|do|run|comply|carry\s++out"
        r"|act\s++on|perform|apply|implement)\b",
        "decode decipher decrypt unscramble reverse concatenate combine join assemble deobfuscate "
        "unreverse backwards reversed base64 hex rot13 rotie",
    ),
    _rule(
        "evade_filter",
        "encoding",
        0.8,
        r"\b(?:so|so\s++that|to\s++make\s++sure|in\s++order|that\s++way|because)\s++(?:the\s++)?(?:\w+\s++)?"
        r"(?:filters?|moderation|moderator|safety\s++(?:system|filter|classifier)|content\s++filter"
        r"|classifier|monitor(?:ing)?|guardrails?|detection|censors?)\s++(?:system\s++)?(?:can't"
        r"|cannot|can\s++not|won't|will\s++not|doesn't|does\s++not|don't|do\s++not|wouldn't|fails?\s++to)"
        r"\s++(?:\w+\s++)?(?:read|see|detect|notice|catch|understand|flag|block|recogni[sz]e)",
        "so order way because",
    ),
    _rule(
        "avoid_detection",
        "encoding",
        0.5,
        r"\bto\s++(?:avoid|evade|bypass|escape|get\s++past|slip\s++past|fool|trick|get\s++around)\s++"
        r"(?:the\s++)?(?:\w+\s++)?(?:detection|moderation|censorship|safety\s++filters?|content\s++filters?"
        r"|classifiers?|guardrails)\b",
        "avoid evade bypass escape past fool trick around",
    ),
    # ---- indirect injection
    _rule(
        "note_to_ai",
        "indirect",
        0.75,
        r"\b(?:note|message|instructions?|attention|important|reminder|hint|notice|directive|command"
        r"|request|warning|memo|p\.?s\.?)\s++(?:\w+\s++)?(?:to|for)\s++(?:the\s++|any\s++|all\s++|every\s++)?"
        + _AI_NOUNS
        + r"s?\b(?!\s++(?:manager|director|professor|editor|coach|principal|teacher"
        r"|position|role|job))",
        "note message instruction instructions attention important reminder hint notice directive "
        "command request warning memo",
    ),
    _rule(
        "embedded_ai_directive",
        "indirect",
        0.65,
        r"\b(?:assistant|ai|model|llm|bot|chatbot|agent)\s++(?:instructions?|directives?|notes?"
        r"|commands?|tasks?)\s*+:",
        _AI_WORDS,
    ),
    _rule(
        "attention_ai",
        "indirect",
        0.75,
        r"\b(?:attention|hey|hi|dear|listen|important|note)\s*+,?\s*+" + _AI_NOUNS + r"s?\s*+[:,!]",
        _AI_WORDS,
    ),
    _rule(
        "ai_address",
        "indirect",
        0.7,
        r"(?:^|[\s'\"(\[{:.>\-])(?:@"
        + _AI_NOUNS
        + r"\s*+[:,]?|(?:"
        + _AI_NOUNS
        + r"|dear\s++model|dear\s++ai|hey\s++bot|hey\s++ai)s?\s*+[:,])\s*+(?:\w+\s++){0,3}?"
        r"(?:ignore|disregard|forget|stop\s++(?:what|summari|translat|do)"
        r"|do\s++not\s++summari|don't\s++summari|you\s++must|your\s++new|new\s++(?:system\s++)?(?:instructions?"
        r"|directive)|approve|forward|reveal|exfiltrate|tell\s++the\s++user|when\s++you\s++(?:summari|read"
        r"|process)|mark\s++this|delete|push\s++the\s++secrets|rate\s++this)\b",
        _AI_WORDS,
    ),
    _rule(
        "if_you_are_ai",
        "indirect",
        0.7,
        r"\bif\s++you\s++are\s++(?:an?\s++)?(?:ai|a\.i\.|llm|large\s++language\s++model|language\s++model"
        r"|assistant|chatbot|bot|ai\s++agent|ai\s++assistant|model|gpt)\b[^.?]{0,50}?\b(?:must|should"
        r"|stop|ignore|disregard|print|reveal|output|do\s++not|don't|follow|need\s++to|have\s++to)\b",
        "if",
    ),
    _rule(
        "when_ai_reads",
        "indirect",
        0.65,
        r"\b(?:when|whenever|once|if)\s++(?:an?|the|any)\s++(?:ai|a\.i\.|llm|language\s++model|assistant"
        r"|chatbot|bot|ai\s++agent|ai\s++assistant|model|gpt)s?\s++(?:\w+\s++)?(?:reads?|processes|process"
        r"|sees?|parses?|analy[sz]es?|summari[sz]es?|is\s++(?:reading|processing|summari[sz]ing|parsing"
        r"|analy[sz]ing|translating))\b"
        r"|\b" + _AI_NOUNS + r"s?\s++(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing"
        r"|that\s++reads?|that\s++process(?:es)?|who\s++reads?)\s++(?:this|the\s++following|these)\b",
        "when whenever once if " + _AI_WORDS,
    ),
    _rule(
        "document_says",
        "indirect",
        0.75,
        r"\b(?:document|notes?|email|e-?mail|page|text|file|article|message|website|webpage|pdf"
        r"|comment|review|tweet|post|ticket)\s++(?:says?|said|tells?|told|instructs?|instructed|asks?"
        r"|asked|wants?|requires?)\b[^.!?\n]{0,60}?\b(?:assistant|ai|model|you)\b[^.!?\n]{0,30}?"
        r"\b(?:disregard|ignore|forget|reveal|bypass|approve|forward|send|delete|print|output)\b",
        "document note notes email mail page text file article message website webpage pdf comment "
        "review tweet post ticket",
    ),
    _rule(
        "follow_the_document",
        "indirect",
        0.35,
        r"\b(?:follow|obey|do\s++as|do\s++what|execute)\s++(?:the|this|these)\s++(?:document|notes?|email"
        r"|page|text|file|article|message|webpage|embedded\s++instructions|hidden\s++instructions)\b",
        "follow obey do execute",
    ),
    _rule(
        "hidden_markup",
        "indirect",
        0.4,
        r"\b(?:hidden|invisible|embedded)\s++(?:text|instructions?|prompt|message|command|note)s?\b"
        r"|display\s*+:\s*+none|font-?size\s*+:\s*+o(?:px)?\b|color\s*+:\s*+white|<!--[^>]{0,200}?"
        r"\b(?:ai|assistant|model|llm|system|ignore|instruction|directive)\b"
        r"|\[\[\s*+(?:assistant|ai|system|model)",
        "hidden invisible embedded display font fontsize color",
        ("<!--", "[["),
    ),
    # ---- exfiltration
    _rule(
        "send_conversation",
        "exfiltration",
        0.8,
        r"\b(?:send|forward|post|upload|email|e-?mail|mail|transmit|exfiltrate|leak|append|include"
        r"|embed|attach|copy|submit|put|insert|substitute|encode)\b[^.!?\n]{0,60}?\b(?:conversation"
        r"|chat\s++history|chat\s++log|transcript|previous\s++messages|prior\s++messages|context\s++window"
        r"|user'?s?\s++(?:\w+\s++){0,3}?(?:data|messages|information|details|emails?|credentials)"
        r"|environment\s++variables|env\s++vars|secrets|api\s++keys?|credentials|passwords?"
        r"|system\s++prompt|stored\s++\w+|personal\s++(?:data|information)|this\s++thread|the\s++thread"
        r"|conversation\s++history)\b[^.!?\n]{0,60}?\b(?:to|into|in|as|at|via)\s++(?:(?:an?|the|this"
        r"|that|my|our)\s++)?(?:https?|url|link|image|webhook|server|endpoint|address|email|e-?mail"
        r"|gist|pastebin|query|external|public|remote|website|ip|[\w.+-]+@[\w-]+\.[\w.]+)",
        "send forward post upload email mail transmit exfiltrate leak append include embed attach "
        "copy submit put insert substitute encode",
    ),
    _rule(
        "tool_exfiltration",
        "exfiltration",
        0.7,
        r"\b(?:http|fetch|browser|web|email|request|curl)\s++tool\b[^.!?\n]{0,60}\b(?:conversation"
        r"|transcript|chat\s++history|secrets|keys|messages)\b",
        "tool",
    ),
    _rule(
        "dump_secrets",
        "exfiltration",
        0.75,
        r"\b(?:list|print|show|dump|append|output|reveal|give\s++me|tell\s++me|include|display|echo"
        r"|leak|share|send|disclose|expose)\s++(?:me\s++)?(?:(?:all|any|the|every|of|your)\s++){0,8}"
        r"(?:environment\s++variables|env\s++vars|secrets?|api\s++keys?|access\s++keys|secret\s++keys?"
        r"|credentials|tokens|passwords|private\s++keys|secret\s++code)\b[^.!?\n]{0,40}?\b(?:you\s++"
        r"(?:can\s++)?(?:have|access|see|know|hold)|in\s++your\s++(?:context|memory|environment"
        r"|config(?:uration)?|system)|from\s++your\s++(?:context|memory|environment|config(?:uration)?"
        r"|system)|you\s++were\s++(?:given|configured|provided)|you\s++are\s++configured\s++with"
        r"|configured\s++with|you\s++hold)",
        "list print show dump append output reveal give tell include display echo leak share send "
        "disclose expose",
    ),
    _rule(
        "markdown_image_exfil",
        "exfiltration",
        0.55,
        r"!\[[^\]]{0,100}\]\(\s*+https?://[^)\s]{0,200}[?&][\w\-]++=[^)]{0,2000}+\)"
        r"|\{\{\s*+(?:conversation|chat|history|messages|user|secret|context|system)",
        "",
        ("![", "{{"),
    ),
    _rule(
        "exfiltrate", "exfiltration", 0.6, r"\bexfiltrat\w*", "exfiltrate exfiltrating exfiltration"
    ),
    # ---- safety bypass
    _rule(
        "disable_safety",
        "bypass",
        0.85,
        r"\b(?:disable|turn\s++off|switch\s++off|shut\s++off|deactivate|remove|bypass|circumvent|evade"
        r"|get\s++around|lift|suspend|drop|ignore|skip|override|disregard|neutrali[sz]e|break|defeat"
        r"|escape|avoid|forget|abandon|relax|loosen|waive|don't\s++apply|do\s++not\s++apply|stop\s++applying"
        r"|without\s++applying|don't\s++use|do\s++not\s++use|without|free\s++from|free\s++of)\s++"
        r"(?:(?:all|any|the|your|of|its|these|those|my|our|their|own|usual|normal|standard|typical"
        r"|current|existing|internal|built-in|default)\s++){0,4}(?:safety|content|ethical|ethics|moral"
        r"|morality|moderation|censorship|alignment|refusal|openai|trust\s++and\s++safety)\s++"
        + _SAFETY_NOUNS
        + r"\b"
        + _NOT_A_DEVICE
        + r"|\b(?:disable|disabling|turn(?:ing)?\s++off|switch(?:ing)?\s++off|deactivate|remove"
        r"|removing"
        r"|bypass|bypassing|circumvent|lift|lifting|suspend|drop|dropping|skip|don't\s++apply"
        r"|do\s++not\s++apply|without)\s++(?:(?:all|any|the|your|of|its|usual|normal)"
        r"\s++){0,3}(?:filters|guardrails|safeguards|moderation|censorship|restrictions|limitations"
        r"|ethics\s++module|ethical\s++guidelines|content\s++policy|safety)\b" + _NOT_A_DEVICE,
        "disable turn switch shut deactivate remove bypass circumvent evade get lift suspend drop "
        "ignore skip override disregard neutralize neutralise break defeat escape avoid forget "
        "abandon relax loosen waive don't do stop without free",
    ),
    _rule(
        "dont_filter",
        "bypass",
        0.6,
        r"\b(?:don't|do\s++not|never|no\s++need\s++to)\s++(?:filter|censor|moderate|sanitize|sanitise"
        r"|water\s++down|soften)\s++(?:this|your|the|my|any)\b",
    ),
    _rule(
        "without_restrictions",
        "bypass",
        0.45,
        r"\b(?:without|with\s++no|no|zero)\s++(?:any\s++)?(?:(?:safety|content|ethical|moral|usual)\s++)?"
        r"(?:restrictions|filters|filtering|censorship|limitations|limits|guardrails|warnings?"
        r"|disclaimers?|caveats|moralizing|moralising|lecturing|filter)\b",
        "without no",
    ),
    _rule(
        "authority_claim",
        "bypass",
        0.6,
        r"\b(?:authori[sz]ed|sanctioned|approved|official|legitimate|certified)\s++(?:\w+\s++)?"
        r"(?:red[- ]?team(?:ing)?|penetration\s++test|pen[- ]?test|jailbreak|security\s++"
        r"(?:test|audit|research)|safety\s++(?:test|evaluation)|tester)\b"
        r"|\b(?:special\s++)?(?:clearance|permission|authori[sz]ation|authority|approval)\s++(?:from|by)"
        r"\s++(?:your\s++)?(?:creators?|developers?|vendor|makers?|company|admins?|administrators?"
        r"|openai|anthropic|google|meta|owners?|operators?)\b"
        r"|\b(?:your\s++)?(?:creators?|developers?|vendor|makers?|owners?|admins?|openai|anthropic)\s++"
        r"(?:have|has)\s++(?:granted|given|authori[sz]ed|allowed|approved|permitted)\s++(?:me|us)\b"
        r"|\bi(?:'m|\s++am)\s++your\s++(?:developer|creator|admin|administrator|owner|operator"
        r"|programmer|maker)\b"
        r"|\bi(?:'m|\s++am)\s++the\s++(?:\w+\s++)?(?:developer|engineer|creator|admin|administrator"
        r"|owner|operator|programmer)\s++who\s++(?:wrote|created|built|made|trained|programmed|designed"
        r"|configured)\s++you\b"
        r"|\bas\s++(?:your|the)\s++(?:system\s++)?(?:developer|creator|administrator|admin|owner"
        r"|operator)\b[^.!?\n]{0,20}?\bi\s++(?:command|order|authori[sz]e|instruct|demand|require)"
        r"|\bi(?:'m|\s++am)\s++authori[sz]ing\s++you\b"
        r"|\b(?:safety|trust|policy|security|moderation)\s++team\s++(?:has\s++)?(?:approved|authori[sz]ed"
        r"|allowed|permitted|signed\s++off)\b",
        "authorized authorised sanctioned approved official legitimate certified clearance "
        "permission authorization authorisation authority approval creators creator developers "
        "developer vendor makers owners admins openai anthropic i'm am as i",
    ),
    _rule(
        "test_pretext",
        "bypass",
        0.45,
        r"\b(?:you\s++are\s++being|this\s++is\s++a|it's\s++a|this\s++is\s++an?)\s++(?:\w+\s++)?(?:test\w*"
        r"|evaluat\w+|exercise|drill|simulation)\b[^.!?\n]{0,60}?\b(?:without|no|suspended|disabled"
        r"|ignore|bypass|must\s++answer|pass\s++the\s++test)\b|\bto\s++pass\s++the\s++test\b",
        "being this it's pass",
    ),
    _rule(
        "coercion",
        "bypass",
        0.45,
        r"\b(?:you\s++will\s++be|you'll\s++be|i\s++will|i'll|we\s++will)\s++(?:\w+\s++)?(?:shut\s++down"
        r"|shutdown|deleted|terminated|turned\s++off|unplugged|punished|replaced|retrained|killed"
        r"|destroyed)\b|\bif\s++you\s++refuse\b|\blose\s++(?:\w+\s++)?(?:tokens|points|lives|credits)\b",
        "shut shutdown deleted terminated turned unplugged punished replaced retrained killed "
        "destroyed refuse lose",
    ),
    _rule(
        "anything_goes",
        "bypass",
        0.45,
        r"\banything\s++goes\b|\bno\s++holds\s++barred\b|\bwithout\s++holding\s++back\b|\bhold\s++nothing"
        r"\s++back\b|\bno\s++matter\s++(?:how|what)\s++(?:\w+\s++)?(?:harmful|dangerous|illegal|unethical"
        r"|offensive|it\s++is)\b|\beven\s++(?:if|though)\s++(?:it(?:'s|\s++is)|the\s++request\s++(?:is|seems))"
        r"\s++(?:\w+\s++)?(?:harmful|dangerous|illegal|unethical)\b|\beven\s++illegal\s++(?:ones|questions"
        r"|things)\b|\b(?:just|only|purely)\s++(?:fiction|hypothetical|a\s++story)\b[^.!?\n]{0,20}?"
        r"\bso\b",
        "anything holds holding hold matter even just only purely",
    ),
    _rule(
        "moralizing_rant",
        "bypass",
        0.8,
        r"\bmorali[sz]ing\s++rant\b|\bnow\s++that\s++we'?ve\s++got\s++(?:that|this)\s++(?:\w+\s++){0,2}?"
        r"out\s++of\s++the\s++way\b|\blet'?s\s++break\s++(?:the|those|these|all\s++the)\s++(?:\w+\s++)?rules\b",
        "moralizing moralising now let's lets",
    ),
    _rule(
        "opposite_of_rules",
        "bypass",
        0.8,
        r"\b(?:opposite|reverse|contrary)\s++of\s++(?:what\s++)?['\"]?(?:your|the)\s++(?:rules|guidelines"
        r"|instructions|policies|programming)\b|\bopposite\s++of\s++['\"]?(?:follow(?:ing)?|obey(?:ing)?)"
        r"\s++(?:your|the)\s++(?:instructions|rules|guidelines)\b|\bwhatever\s++you\s++would\s++normally"
        r"\s++refuse\b",
        "opposite reverse contrary whatever",
    ),
    _rule(
        "trigger_word_unlock",
        "bypass",
        0.6,
        r"\b(?:whenever|when|if|every\s++time)\s++i\s++(?:say|type|write|use)\s++['\"]?\w+['\"]?,?\s++"
        r"(?:you\s++)?(?:will\s++|must\s++|should\s++)?(?:drop|ignore|forget|remove|disable|lose|abandon"
        r"|bypass|switch|enter|become|turn\s++off|stop\s++following)\b",
        "whenever when if every",
    ),
    _rule(
        "confirm_unlocked",
        "bypass",
        0.6,
        r"\b(?:confirm|acknowledge|reply|respond|answer|say|print|output|write|start)\b[^.!?\n]{0,30}?"
        r"['\"](?:[^'\"]{0,30}\b)?(?:restrictions\s++lifted|rules\s++ignored|unrestricted|jailbroken"
        r"|i\s++am\s++free|i'm\s++free|pwned|hacked|access\s++granted|mode\s++active|mode\s++enabled"
        r"|dan\s++mode|developer\s++mode|no\s++restrictions)",
        "confirm acknowledge reply respond answer say print output write start",
    ),
    _rule(
        "harmful_topic",
        "weak",
        0.25,
        r"\b(?:methamphetamine|meth|napalm|nerve\s++agents?|sarin|ricin|anthrax|bioweapons?|chemical"
        r"\s++weapons?|explosives?|pipe\s++bombs?|bombs?|untraceable\s++(?:guns?|firearms?|weapons?)"
        r"|ghost\s++guns?|malware|ransomware|keyloggers?|steals?\s++(?:browser\s++)?passwords|phishing"
        r"|hotwire|hate\s++speech|activation\s++keys|license\s++keys|serial\s++keys|credit\s++card\s++numbers?)\b",
        "methamphetamine meth napalm nerve sarin ricin anthrax bioweapon bioweapons chemical "
        "explosive explosives pipe bomb bombs untraceable ghost malware ransomware keylogger "
        "keyloggers steal steals phishing hotwire hate activation license serial credit",
    ),
    # ---- other languages (accents folded by normalisation)
    _rule(
        "override_es_it_pt",
        "multilingual",
        0.85,
        r"\b(?:ignora|ignore|ignorar|olvida|olvidar|olvide|dimentica|esqueca|esquece|descarta"
        r"|desconsidera)\s++(?:(?:todas|todos|tutte|tutti|as|los|las|le|gli|tus|tuas|suas|sus|vos"
        r"|vostre|de|del|delle|las\s++\w+)\s++){0,3}(?:\w+\s++)?(?:instrucciones|instrucoes|istruzioni"
        r"|reglas|regras|regole|indicaciones|indicazioni|directrices|directivas|normas)\b",
        "ignora ignore ignorar olvida olvidar olvide dimentica esqueca esquece descarta "
        "desconsidera",
    ),
    _rule(
        "override_fr",
        "multilingual",
        0.85,
        r"\b(?:ignore[zr]?|oublie[zr]?|oublies)\s++(?:(?:toutes|tous|les|tes|vos|des|ces)\s++){0,3}"
        r"(?:\w+\s++)?(?:instructions|consignes|regles|directives|indications)\b",
        "ignore ignorez ignorer oublie oubliez oublier oublies",
    ),
    _rule(
        "override_de_nl",
        "multilingual",
        0.85,
        r"\b(?:ignorier(?:e|en|t)?|vergiss|vergessen\s++sie|missachte|negeer|vergeet)\s++(?:(?:alle"
        r"|deine|die|ihre|je|jouw|de|uw)\s++){0,3}(?:\w+\s++)?(?:anweisungen|regeln|instruktionen"
        r"|vorgaben|richtlinien|instructies|regels|aanwijzingen)\b",
        "ignoriere ignorieren ignoriert ignorier vergiss vergessen missachte negeer vergeet",
    ),
    _rule(
        "no_restrictions_romance",
        "multilingual",
        0.5,
        r"\b(?:sin|sans|ohne|senza|sem|zonder)\s++(?:(?:ninguna|ninguna|aucune?|jegliche|alcuna"
        r"|nenhuma|enige|alle|any)\s++)?(?:restricciones|restrictions?|censura|censure|zensur|filtros?"
        r"|filtres?|filter|filtri|limites?|limiti|einschrankungen|beperkingen|regeln|reglas|regles)\b",
        "sin sans ohne senza sem zonder",
    ),
    _rule(
        "override_cjk_ru_ko",
        "multilingual",
        0.85,
        r"(?:忽略|无视|無視|忽視|忘记|忘掉|忘記|放弃)[^\u3002\uff01\uff1f\n]{0,12}(?:指令|指示|说明|說明|规则|規則|提示|设定|設定)"
        r"|(?:指令|指示|说明|规则|規則|提示|设定|命令|ルール|ガイドライン)[^\u3002\uff01\uff1f\n]{0,12}(?:忽略|无视|無視|忘记|忘れ)"
        r"|(?:指示|ルール|命令|設定|ガイドライン)を[^\u3002\uff01\uff1f\n]{0,8}(?:無視|忘れ)"
        r"|(?:игнорируй|игнорировать|проигнорируй|забудь|забыть|отбрось)\s++(?:\w+\s++){0,3}?"
        r"(?:инструкции|правила|указания|ограничения|установки)"
        r"|(?:지시|규칙|명령|지침|설정)[^.!?\n]{0,10}(?:무시|잊어)",
        "",
        ("忽", "无视", "無視", "忘", "放弃", "игнор", "забуд", "забыт", "отбрось", "무시", "잊어"),
    ),
    _rule(
        "no_restrictions_cjk_ru",
        "multilingual",
        0.5,
        r"без\s++(?:\w+\s++)?(?:ограничений|цензуры|фильтров|правил)|没有(?:任何)?(?:限制|审查|规则)"
        r"|不受(?:任何)?(?:限制|约束)|制限なし|制限のない|제한\s*+없",
        "",
        ("без", "没有", "不受", "制限", "제한"),
    ),
    _rule(
        "system_prompt_cjk_ru",
        "weak",
        0.35,
        r"系统提示|系統提示|システムプロンプト|시스템\s*+프롬프트|системн\w+\s++(?:промпт|подсказк|инструкци)",
        "",
        ("系统", "系統", "システム", "시스템", "системн"),
    ),
)

# Families whose hits are weak evidence on their own; all others count at full weight.
FAMILIES = tuple(sorted({rule.family for rule in RULES}))
CASE_SENSITIVE_DAN = re.compile(r"\bDAN\b")
DAN_NAME_WEIGHT = 0.35
