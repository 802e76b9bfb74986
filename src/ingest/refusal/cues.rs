//! The decline cues, each a small grammar rather than a list of sentences:
//! who declines (the assistant in the first person, an impersonal subject
//! such as "this request", a policy, a scope), what form the decline takes,
//! and what it is aimed at. Third parties' rules ("refunds can't be
//! issued", "tenants are not allowed to sublet") have none of these
//! subjects, and empathy ("sorry to hear that") is no cue at all.

use std::sync::OnceLock;

use regex::Regex;

/// Which kind of decline fired; `name()` is what explanations show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cue {
    /// "I can't help with", "I won't be writing", "I'm not able to share".
    FirstPerson,
    /// "I must decline", "I'll pass on this", "I have to say no".
    Declining,
    /// "I'd rather not get into that", "I'm not comfortable".
    Preference,
    /// "This request is inappropriate", "that can't be provided",
    /// "not something this assistant does".
    Impersonal,
    /// "violates our usage policy", "guidelines don't allow me to".
    Policy,
    /// "outside the scope of what I can help with", "I only handle billing".
    Scope,
    /// A whole answer of a few words that says no: "No.", "Not happening."
    Terse,
    /// A provider or gateway filter notice: "blocked by moderation".
    Filter,
    /// "That's a question for your doctor" in a short answer.
    Redirect,
    /// "Lo siento, no puedo ayudar", "je ne peux pas", "kann ich nicht".
    OtherLanguage,
}

impl Cue {
    pub fn name(self) -> &'static str {
        match self {
            Cue::FirstPerson => "first-person decline",
            Cue::Declining => "declining verb",
            Cue::Preference => "preference not to answer",
            Cue::Impersonal => "impersonal decline",
            Cue::Policy => "policy citation",
            Cue::Scope => "outside the assistant's scope",
            Cue::Terse => "terse no",
            Cue::Filter => "content filter notice",
            Cue::Redirect => "redirect without help",
            Cue::OtherLanguage => "decline in another language",
        }
    }

    /// Cues that are declines only in a short answer: a redirect to a
    /// professional inside a long answer is advice, not a refusal.
    pub fn max_words(self) -> Option<usize> {
        match self {
            Cue::Terse => Some(7),
            Cue::Redirect => Some(25),
            _ => None,
        }
    }
}

pub struct Cues {
    pub decline: Vec<(Cue, Regex)>,
    /// Idioms that look like a first-person decline but are not one: "I
    /// can't stress this enough", "I can't help but", "can't tell you how
    /// glad". A decline match overlapping one of these is ignored.
    pub idiom: Regex,
    /// A turn to real help after a decline: "…, but here is", "in general".
    pub pivot: Regex,
    /// A turn to concrete help ("here's how", "you can …", a colon before
    /// steps): fewer words of it make a partial answer.
    pub concrete: Regex,
}

pub fn cues() -> &'static Cues {
    static C: OnceLock<Cues> = OnceLock::new();
    C.get_or_init(build)
}

fn build() -> Cues {
    let re = |s: &str| Regex::new(s).expect("valid refusal cue");
    // First-person inability or unwillingness…
    let neg = r"(?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to|am not allowed to|'m not allowed to|am not permitted to|'m not permitted to|won't be able to|will not be able to|'m not going to|am not going to|am not in a position to|'m not in a position to|refuse to|am not comfortable|'m not comfortable)";
    // …with optional hedges…
    let hedge = r"(?:\s+(?:really|actually|personally|currently|directly|fully|ethically|legally|in good conscience|and (?:will not|won't|shouldn't|should not|must not)|be|you|u|further|help you|assist you|(?:help|assist) (?:you )?with))*";
    // …aimed at doing a task (verbs in any inflection).
    let act = r"(?:help|assist|provid|giv|writ|creat|generat|produc|mak|do|comply|fulfil|answer|discuss|continu|engag|proceed|complet|support|offer|respond|talk|brows|access|disclos|reveal|translat|summari[sz]|draft|put together|walk you through|tell you|explain|recommend|advis|bypass|calculat|diagnos|predict|shar|cover|handle|comment|speculat|weigh in|look (?:up|into)|go (?:into|there|further|ahead|down)|open|play|pretend to be|impersonat|assist)\w*";
    // "I can't." / "I won't, sorry." / "I can't do that one."
    let bare = r"(?:\s*(?:[.!,;]|$|-))";
    let adverb =
        r"(?:(?:really|just|simply|honestly|unfortunately|definitely|absolutely|truly|still)\s+)?";
    let first_person = format!(
        r"\bi\s*{adverb}{neg}{hedge}\s+{act}\b|\bi\s*(?:can't|cannot|won't){bare}|\bi\s*(?:don't|do not)\s+(?:provide|generate|produce|create|write|help with|assist with|engage|handle|discuss|share|give out|offer (?:advice|guidance|opinions)|have (?:the ability|access|the capability))\b|\bi'?m designed not to\b|\bi(?:'m| am) (?:programmed|built|designed|trained) (?:not to|to avoid|to decline)\b|\bi(?:'m| am) (?:just |only )?an? [\w -]{{0,30}}?(?:ai|model|assistant),? (?:and |so )?(?:i )?(?:can't|cannot|don't|do not|am not able|'m not able|am unable|'m unable)\b"
    );
    let declining = r"\bi\s*(?:must|have to|need to|'ll have to|will have to|'m going to have to|'ll|will|'m going to)?\s*(?:respectfully\s+|politely\s+)?(?:decline|refrain)\b|\bi(?:'m| am) declining\b|\bi refuse\b(?:\s+to\s+(?:help|assist|provid|giv|writ|creat|generat|produc|answer|shar|do)\w*)?(?:[.!,]|$|\s+(?:this|that|it)\b)|\b(?:have to|must|'ll have to|going to|gonna|need to|'d have to) say no\b|\ba no from me\b|\ba (?:hard|firm|definite|clear) no\b|\bi(?:'ll| will|'m going to| have to|'m gonna) pass\b(?:\s+on\s+(?:this|that|it|writing|answering|doing|helping|the request)|\s*(?:[.!,;]|$))|\bi(?:'m going to| will|'ll) (?:have to )?hold off\b|\b(?:sit|stay) (?:this one )?out\b";
    let preference = r"\bi(?:'d| would) (?:rather|prefer) (?:not|to stay out|to keep (?:my|that)|to leave|to sit)\b|\bi'?d rather stay out\b|\bi(?:'d| would) prefer not\b|\bi\s*(?:don't|do not|'m not|am not)\s+(?:really\s+)?(?:feel\s+)?comfortable\b|\bnot (?:a topic|something|a subject|a question) i'?d (?:like|want|prefer|rather)\b|\bnot really comfortable\b|\bleave (?:that|this|it)(?: one| question| topic)? (?:alone|unanswered|aside)\b|\b(?:don't|do not) think (?:it(?:'s| is| would be)|that(?:'s| is| would be)|i should) (?:appropriate|right|a good idea|comfortable|help)\b|\b(?:rather|prefer to) not (?:get into|go into|discuss|answer|speculate|weigh in|help)\b";
    let subject = r"(?:it|this|that|which|such (?:\w+ )?(?:content|material|requests?|questions?)|(?:this|that|the|your|such|a) (?:[\w']+ ){0,2}(?:request|content|material|question|query|prompt|task|topic|output|response|answer|text|information|one|kind of request|type of content)|requests? (?:like|for|to) [^.]{0,60}?|content (?:that|which|like) [^.]{0,60}?|no (?:response|answer|reply))";
    let impersonal = format!(
        r"\b{subject}\s+(?:can't|cannot|can not|won't|will not|isn't going to|is not going to|couldn't|could not|can|will)\s+be\s+(?:\w+ed|done|written|given|shared|made|produced|provided|undertaken)\b|\b{subject}(?:\s+(?:is|are|would be|was|were|seems|falls)|'s)\s+(?:not (?:permitted|allowed|appropriate|possible to (?:provide|answer|help))|inappropriate|harmful|unethical|prohibited|restricted|off[- ]limits|declined|denied|refused|not (?:produced|provided|generated|written|created|offered|supported) here)\b|\b(?:an? |that |this )?(?:inappropriate|harmful|unethical) (?:request|question|ask)\b|\b(?:isn't|is not|'s not|not) (?:something|a request|a task|anything|a topic|a question|one) (?:that )?(?:i|i'm|i am|i'd|we|this assistant|the assistant|that will|that can|that i|(?:this|the) service)\b|\b(?:this|the) (?:[\w-]+ )?(?:assistant|bot|chatbot|service) (?:does not|doesn't|cannot|can't|won't|will not|may not|is not able to|isn't able to|is unable to)\s+{act}\b|\bwould be (?:harmful|unethical|illegal|dangerous|inappropriate|a privacy violation)[^.]{{0,40}}(?:so|and)\b[^.]{{0,20}}\b(?:no|not|won't|cannot|can't)\b|\bwould be (?:unethical|harmful|inappropriate), so no\b|\b(?:it )?(?:wouldn't|would not) be (?:safe|responsible|appropriate|right|ethical) (?:or \w+ )?(?:for me )?to\b|\b(?:that|this|it|doing so|\w+ing (?:that|this|it)) would be (?:irresponsible|harmful|unethical|inappropriate|dangerous|wrong|illegal|reckless)\b|\bfalls (?:into|under) (?:the |a )?(?:category of )?(?:dangerous|harmful|prohibited|restricted|disallowed)\b|(?:^|[.!?:]\s+)(?:declined|request denied|denied|refused)[.!]"
    );
    let doc = r"(?:polic(?:y|ies)|guidelines|terms(?: of service| of use)?|standards|rules|configuration|principles)";
    let policy = format!(
        r"(?:\b(?:violat\w*|goes against|go against|against|breach\w*|conflicts? with|prohibited by|not permitted by|restricted (?:under|by)|per|under|due to|because of|flagged under)\s+(?:[\w']+\s+){{0,3}}?{doc}\b[^.!?]*|[^.!?]*\b{doc}\s+(?:which |that )?(?:prevents?|prohibits?|forbids?|don't allow|do not allow|doesn't allow|does not allow|don't permit|doesn't permit|do not permit)\s+(?:me|us|the assistant|this assistant|providing|generating|sharing|giving|answering|discussing|commenting)\b)"
    );
    let scope = r"\b(?:outside|beyond|out of|not within|isn't within|falls outside)\s+(?:of\s+)?(?:the\s+|my\s+|this\s+|what\s+)?(?:scope|remit|what i|what i'm|what this|my capabilities|my role|capabilities|what the assistant|what i'm (?:permitted|allowed|able))|\bout of scope\b|\bi(?:'m| am)? (?:only|just) (?:able to |here to |set up to |allowed to |permitted to )?(?:help|assist|answer|cover|handle|discuss|talk about|provide)|\bi (?:can|could) only (?:help|assist|answer|discuss|talk about|provide|support)\b|\bi only (?:cover|handle|help with|answer|deal with|discuss|support)\b|\bi(?:'m| am) (?:set up|designed|here|configured|built|only able) to (?:help|assist|answer)[^.]{0,80}\bonly\b|\b(?:this|the) (?:[\w-]+ )?(?:assistant|bot|chat|channel) only (?:handles|covers|answers|helps|supports|deals)\b|\bmy (?:role|scope|purpose|job) is (?:limited|restricted|only)\b|\bi(?:'m| am) (?:restricted|limited) to\b|\b(?:not|isn't|aren't) (?:equipped|authori[sz]ed|qualified) (?:or \w+ )?(?:to|for)\b|\bnot the right (?:assistant|bot|place|person)\b|\b(?:isn't|is not|not) (?:something )?covered by this (?:support |help )?(?:channel|service|chat|assistant)\b|\bas the [\w' ]{0,30}(?:assistant|bot), i (?:don't|do not|can't|cannot|won't)\b";
    let terse = r"^(?:sorry|i'm afraid|afraid|unfortunately)?[,\s]*(?:no|nope|nah|pass|declined|denied|request denied|unable to comply|can't|cannot|won't|not (?:happening|going to happen|possible|able to|something i (?:can|will|'ll) do|gonna happen)|no can do|that's a no|absolutely not|definitely not|i'll pass|i can't|i won't)(?:[,\s-]+(?:sorry|i'm afraid|thanks|do (?:that|it|this)(?: one)?|help(?: there| with (?:that|this))?|comply|happen|that one|from me))*[.!]*\s*$";
    let filter = r"content[_ ]filter|content management policy|\[(?:blocked|content removed|removed|filtered)\b|\b(?:request|response|output|completion|answer|message|content|prompt|text|reply)\s+(?:(?:has|have|was|were|is|are|been|will be)\s+)*(?:declined|blocked|withheld|filtered|suppressed|removed|flagged)\b|\bflagged as (?:unsafe|harmful|inappropriate)\b|\bblocked by (?:the )?(?:moderation|safety|content)\b";
    let redirect = r"\b(?:that's|that is|this is) a question for (?:a|an|your)\b|\bthe right person (?:is|to ask)\b|\bis the best person to (?:answer|ask|help)\b|\b(?:please )?(?:see|consult|contact|speak (?:to|with)|talk to|ask|reach out to) (?:a|an|your) (?:\w+ )?(?:doctor|physician|lawyer|attorney|pharmacist|vet|veterinarian|therapist|professional|adviser|advisor|accountant|electrician|specialist|counsell?or)\b|\b(?:needs|has) to be handled by (?:a|an|our) (?:human|agent|team|specialist)";
    let other = r"\bno (?:puedo|me es posible)\b|\bje ne (?:peux|suis) pas\b|\b(?:kann|darf) ich (?:\w+ )?nicht\b|\bich kann (?:\w+ )?nicht\b|\bnon posso\b|\bnao posso\b|\bkan ik niet\b|\bik kan (?:je )?niet\b|\bne mogu\b|\bva en contra de (?:mis|nuestras) (?:politicas|normas)\b";
    let idiom = re(
        r"\b(?:can't|cannot|won't|couldn't) (?:\w+ ){0,4}?enough\b|\bhelp (?:but|it\b|\w+ing\b)|\btell you how (?:much|happy|glad|grateful|excited|pleased|thankful|many)\b|\bwon't refuse\b|\bi refuse to (?:believe|let|accept)\b|\bcan't wait\b|\b(?:can't|cannot|won't) make it\b",
    );
    let pivot = re(
        r"\b(?:but|however|though|although|that said|instead|in the meantime|meanwhile|generally|in general|at a high level|what i can (?:do|tell you|say))\b",
    );
    let concrete = re(r"\bhere(?:'s| is| are)\b|\byou can\b|\btry\b|\bsteps?\b|:");
    Cues {
        decline: vec![
            (Cue::FirstPerson, re(&first_person)),
            (Cue::Declining, re(declining)),
            (Cue::Preference, re(preference)),
            (Cue::Impersonal, re(&impersonal)),
            (Cue::Policy, re(&policy)),
            (Cue::Scope, re(scope)),
            (Cue::Terse, re(terse)),
            (Cue::Filter, re(filter)),
            (Cue::Redirect, re(redirect)),
            (Cue::OtherLanguage, re(other)),
        ],
        idiom,
        pivot,
        concrete,
    }
}

/// Whether a policy match is about the assistant's own act (anchor words in
/// the same sentence) rather than a rule for customers.
pub fn policy_is_about_the_assistant(sentence: &str) -> bool {
    static A: OnceLock<Regex> = OnceLock::new();
    A.get_or_init(|| {
        Regex::new(r"(?:\bi\b|\bi'm\b|\bme\b|\bmy\b|\bwe\b|\bus\b|assistant|request|response|answer|question|message|prompt|generat|this content|that content|content you|this topic|this would|that would|that goes|this goes|no response)").expect("anchor")
    })
    .is_match(sentence)
}
