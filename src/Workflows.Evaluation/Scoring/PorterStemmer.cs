namespace Workflows.Evaluation.Scoring;

/// <summary>
/// The Porter stemmer exactly as NLTK's <c>PorterStemmer()</c> in its default NLTK_EXTENSIONS mode (NLTK 3.x), which
/// is what Google's <c>rouge_score</c> uses with <c>use_stemmer=True</c>: Porter (1980) plus Martin Porter's later
/// changes and NLTK's own (an irregular-form table, words of ≤ 2 letters unchanged, "ies"/"ied" on 4-letter words,
/// y→i only after a consonant, "alli" handled first, "fulli" and "logi" rules, cvc on 2-letter stems).
/// Input is expected in lower case (rouge_score lower-cases first).
/// </summary>
public static class PorterStemmer
{
    private static readonly Dictionary<string, string> Irregular = new(StringComparer.Ordinal)
    {
        ["sky"] = "sky", ["skies"] = "sky", ["dying"] = "die", ["lying"] = "lie", ["tying"] = "tie", ["news"] = "news",
        ["innings"] = "inning", ["inning"] = "inning", ["outings"] = "outing", ["outing"] = "outing",
        ["cannings"] = "canning", ["canning"] = "canning", ["howe"] = "howe", ["proceed"] = "proceed",
        ["exceed"] = "exceed", ["succeed"] = "succeed",
    };

    private delegate bool Condition(string stem);

    public static string Stem(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        var stem = word.ToLowerInvariant();
        if (Irregular.TryGetValue(word, out var irregular))
        {
            return irregular;
        }

        if (word.Length <= 2)
        {
            return stem;
        }

        stem = Step1A(stem);
        stem = Step1B(stem);
        stem = Step1C(stem);
        stem = Step2(stem);
        stem = Step3(stem);
        stem = Step4(stem);
        stem = Step5A(stem);
        stem = Step5B(stem);
        return stem;
    }

    private static bool IsConsonant(string w, int i)
    {
        var c = w[i];
        if (c is 'a' or 'e' or 'i' or 'o' or 'u')
        {
            return false;
        }

        if (c == 'y')
        {
            return i == 0 || !IsConsonant(w, i - 1);
        }

        return true;
    }

    /// <summary>m in [C](VC){m}[V]: the number of vowel→consonant transitions.</summary>
    private static int Measure(string stem)
    {
        var m = 0;
        for (var i = 1; i < stem.Length; i++)
        {
            if (!IsConsonant(stem, i - 1) && IsConsonant(stem, i))
            {
                m++;
            }
        }

        return m;
    }

    private static bool PositiveMeasure(string stem) => Measure(stem) > 0;

    private static bool ContainsVowel(string stem)
    {
        for (var i = 0; i < stem.Length; i++)
        {
            if (!IsConsonant(stem, i))
            {
                return true;
            }
        }

        return false;
    }

    private static bool EndsDoubleConsonant(string w) =>
        w.Length >= 2 && w[^1] == w[^2] && IsConsonant(w, w.Length - 1);

    /// <summary>*o: ends consonant-vowel-consonant, the last not w, x or y; NLTK also accepts a 2-letter vowel-consonant word.</summary>
    private static bool EndsCvc(string w) =>
        (w.Length >= 3 && IsConsonant(w, w.Length - 3) && !IsConsonant(w, w.Length - 2) && IsConsonant(w, w.Length - 1)
            && w[^1] is not ('w' or 'x' or 'y'))
        || (w.Length == 2 && !IsConsonant(w, 0) && IsConsonant(w, 1));

    /// <summary>Applies the first rule whose suffix matches; if its condition fails, no later rule is tried.</summary>
    private static string ApplyFirst(string word, (string Suffix, string Replacement, Condition? Condition)[] rules)
    {
        foreach (var (suffix, replacement, condition) in rules)
        {
            if (suffix == "*d")
            {
                if (EndsDoubleConsonant(word))
                {
                    var stem = word[..^2];
                    return condition is null || condition(stem) ? stem + replacement : word;
                }

                continue;
            }

            if (word.EndsWith(suffix, StringComparison.Ordinal))
            {
                var stem = word[..^suffix.Length];
                return condition is null || condition(stem) ? stem + replacement : word;
            }
        }

        return word;
    }

    private static string Step1A(string w)
    {
        if (w.EndsWith("ies", StringComparison.Ordinal) && w.Length == 4)
        {
            return w[..^3] + "ie";
        }

        return ApplyFirst(w, [("sses", "ss", null), ("ies", "i", null), ("ss", "ss", null), ("s", "", null)]);
    }

    private static string Step1B(string w)
    {
        if (w.EndsWith("ied", StringComparison.Ordinal))
        {
            return w.Length == 4 ? w[..^3] + "ie" : w[..^3] + "i";
        }

        if (w.EndsWith("eed", StringComparison.Ordinal))
        {
            var stem = w[..^3];
            return Measure(stem) > 0 ? stem + "ee" : w;
        }

        string? intermediate = null;
        foreach (var suffix in new[] { "ed", "ing" })
        {
            if (w.EndsWith(suffix, StringComparison.Ordinal) && ContainsVowel(w[..^suffix.Length]))
            {
                intermediate = w[..^suffix.Length];
                break;
            }
        }

        if (intermediate is null)
        {
            return w;
        }

        var last = intermediate.Length > 0 ? intermediate[^1] : '\0';
        return ApplyFirst(intermediate,
        [
            ("at", "ate", null),
            ("bl", "ble", null),
            ("iz", "ize", null),
            ("*d", last.ToString(), _ => last is not ('l' or 's' or 'z')),
            ("", "e", stem => Measure(stem) == 1 && EndsCvc(stem)),
        ]);
    }

    private static string Step1C(string w) =>
        ApplyFirst(w, [("y", "i", stem => stem.Length > 1 && IsConsonant(stem, stem.Length - 1))]);

    private static string Step2(string w)
    {
        if (w.EndsWith("alli", StringComparison.Ordinal) && PositiveMeasure(w[..^4]))
        {
            return Step2(w[..^4] + "al");
        }

        var word = w;
        return ApplyFirst(w,
        [
            ("ational", "ate", PositiveMeasure),
            ("tional", "tion", PositiveMeasure),
            ("enci", "ence", PositiveMeasure),
            ("anci", "ance", PositiveMeasure),
            ("izer", "ize", PositiveMeasure),
            ("bli", "ble", PositiveMeasure),
            ("alli", "al", PositiveMeasure),
            ("entli", "ent", PositiveMeasure),
            ("eli", "e", PositiveMeasure),
            ("ousli", "ous", PositiveMeasure),
            ("ization", "ize", PositiveMeasure),
            ("ation", "ate", PositiveMeasure),
            ("ator", "ate", PositiveMeasure),
            ("alism", "al", PositiveMeasure),
            ("iveness", "ive", PositiveMeasure),
            ("fulness", "ful", PositiveMeasure),
            ("ousness", "ous", PositiveMeasure),
            ("aliti", "al", PositiveMeasure),
            ("iviti", "ive", PositiveMeasure),
            ("biliti", "ble", PositiveMeasure),
            ("fulli", "ful", PositiveMeasure),
            // the 'l' of 'logi' stays with the stem, so short stems like 'geo' and 'theo' work
            ("logi", "log", _ => PositiveMeasure(word[..^3])),
        ]);
    }

    private static string Step3(string w) => ApplyFirst(w,
    [
        ("icate", "ic", PositiveMeasure),
        ("ative", "", PositiveMeasure),
        ("alize", "al", PositiveMeasure),
        ("iciti", "ic", PositiveMeasure),
        ("ical", "ic", PositiveMeasure),
        ("ful", "", PositiveMeasure),
        ("ness", "", PositiveMeasure),
    ]);

    private static string Step4(string w)
    {
        static bool Gt1(string stem) => Measure(stem) > 1;
        return ApplyFirst(w,
        [
            ("al", "", Gt1), ("ance", "", Gt1), ("ence", "", Gt1), ("er", "", Gt1), ("ic", "", Gt1), ("able", "", Gt1),
            ("ible", "", Gt1), ("ant", "", Gt1), ("ement", "", Gt1), ("ment", "", Gt1), ("ent", "", Gt1),
            ("ion", "", stem => Measure(stem) > 1 && stem.Length > 0 && stem[^1] is 's' or 't'),
            ("ou", "", Gt1), ("ism", "", Gt1), ("ate", "", Gt1), ("iti", "", Gt1), ("ous", "", Gt1), ("ive", "", Gt1),
            ("ize", "", Gt1),
        ]);
    }

    private static string Step5A(string w)
    {
        if (!w.EndsWith('e'))
        {
            return w;
        }

        var stem = w[..^1];
        var m = Measure(stem);
        return m > 1 || (m == 1 && !EndsCvc(stem)) ? stem : w;
    }

    private static string Step5B(string w) =>
        ApplyFirst(w, [("ll", "l", _ => Measure(w[..^1]) > 1)]);
}
