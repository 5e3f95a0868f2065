using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Scoring;

namespace Workflows.Evaluation.Tests.Scoring;

public sealed class ScorerTests
{
    private const string Answer = "eat a sandwich and sit in Dolores Park on a sunny day.";

    // NLTK 3.8 PorterStemmer() (default NLTK_EXTENSIONS mode), run once with Debian's python3-nltk.
    [Theory]
    [InlineData("sunny", "sunni")]
    [InlineData("dolores", "dolor")]
    [InlineData("caresses", "caress")]
    [InlineData("ponies", "poni")]
    [InlineData("dies", "die")]
    [InlineData("spied", "spi")]
    [InlineData("died", "die")]
    [InlineData("generalization", "gener")]
    [InlineData("oscillators", "oscil")]
    [InlineData("relational", "relat")]
    [InlineData("conditional", "condit")]
    [InlineData("running", "run")]
    [InlineData("hopping", "hop")]
    [InlineData("agreed", "agre")]
    [InlineData("feed", "feed")]
    [InlineData("dying", "die")]
    [InlineData("skies", "sky")]
    [InlineData("flies", "fli")]
    [InlineData("controlling", "control")]
    [InlineData("roll", "roll")]
    [InlineData("probate", "probat")]
    [InlineData("rate", "rate")]
    [InlineData("cease", "ceas")]
    [InlineData("sandwiches", "sandwich")]
    [InlineData("francisco", "francisco")]
    [InlineData("sitting", "sit")]
    [InlineData("news", "news")]
    [InlineData("proceed", "proceed")]
    [InlineData("troubles", "troubl")]
    [InlineData("enjoy", "enjoy")]
    [InlineData("ivy", "ivi")]
    [InlineData("innings", "inning")]
    [InlineData("hopefulness", "hope")]
    [InlineData("formalize", "formal")]
    [InlineData("electrical", "electr")]
    [InlineData("triplicate", "triplic")]
    [InlineData("adjustable", "adjust")]
    [InlineData("bowdlerize", "bowdler")]
    [InlineData("geology", "geolog")]
    [InlineData("fully", "fulli")]
    [InlineData("radically", "radic")]
    [InlineData("analogously", "analog")]
    [InlineData("sensibility", "sensibl")]
    [InlineData("filing", "file")]
    [InlineData("failing", "fail")]
    [InlineData("happiness", "happi")]
    [InlineData("relativity", "rel")]
    [InlineData("digitizer", "digit")]
    [InlineData("bled", "bled")]
    [InlineData("tanned", "tan")]
    [InlineData("falling", "fall")]
    [InlineData("hissing", "hiss")]
    [InlineData("fizzed", "fizz")]
    [InlineData("conflated", "conflat")]
    [InlineData("sized", "size")]
    [InlineData("is", "is")]
    public void Porter_stems_like_nltk(string word, string stem) => PorterStemmer.Stem(word).Should().Be(stem);

    [Fact]
    public void Rouge_tokens_lowercase_split_on_non_alphanumerics_and_stem_words_longer_than_three()
    {
        NeedleScorers.RougeTokens(PaperNeedle.Needle).Should().Equal(
            "the", "best", "thing", "to", "do", "in", "san", "francisco", "is", "eat", "a", "sandwich", "and", "sit",
            "in", "dolor", "park", "on", "a", "sunni", "day");
        NeedleScorers.RougeTokens("It's 42-Dolores!").Should().Equal("it", "s", "42", "dolor");
    }

    [Fact]
    public void Rouge1_hand_computed_values()
    {
        // Response tokens (12) all occur in the needle (21 tokens, "a" and "in" twice): overlap 12,
        // P = 12/12, R = 12/21, F = 2PR/(P+R) = 24/33.
        NeedleScorers.Score(NeedleScoreKind.Rouge1, "Eat a sandwich and sit in Dolores Park on a sunny day.", NeedleTask.Paper)
            .Should().BeApproximately(240.0 / 33, 1e-12);
        NeedleScorers.Score(NeedleScoreKind.Rouge1, PaperNeedle.Needle.Trim(), NeedleTask.Paper).Should().BeApproximately(10, 1e-12);

        // "Sunnier days": stems sunnier → sunnier (no rule fires), days → day; overlap {day} = 1 of 2 and 21.
        NeedleScorers.Rouge1F(PaperNeedle.Needle, "sunnier days").Should().BeApproximately(2 * 0.5 * (1.0 / 21) / (0.5 + (1.0 / 21)), 1e-12);
        NeedleScorers.Score(NeedleScoreKind.Rouge1, "I don't know.", NeedleTask.Paper).Should().Be(0);
        NeedleScorers.Score(NeedleScoreKind.Rouge1, "", NeedleTask.Paper).Should().Be(0);
    }

    [Fact]
    public void Word_recall_keeps_the_quirks_of_visualize_py()
    {
        // 12 expected words, 11 distinct ("a" twice): a perfect answer scores 11/12.
        NeedleScorers.WordRecall("Eat a sandwich and sit in Dolores Park on a sunny day.", Answer).Should().BeApproximately(11.0 / 12, 1e-12);

        // Without the final period "day" is not "day.": 10/12.
        NeedleScorers.WordRecall("eat a sandwich and sit in dolores park on a sunny day", Answer).Should().BeApproximately(10.0 / 12, 1e-12);

        // "sandwich." with a period does not match "sandwich": overlap {in, eat, a} = 3/12.
        NeedleScorers.WordRecall("The best thing to do in San Francisco is eat a sandwich.", Answer).Should().BeApproximately(3.0 / 12, 1e-12);

        // Words are split on Python whitespace (tabs, newlines) and compared as a set.
        NeedleScorers.WordRecall("EAT\teat\nday.", Answer).Should().BeApproximately(2.0 / 12, 1e-12);
        NeedleScorers.WordRecall("", Answer).Should().Be(0);
    }

    [Fact]
    public void Corrected_word_recall_uses_unique_words_without_punctuation()
    {
        NeedleScorers.WordRecallFixed("Eat a sandwich and sit in Dolores Park on a sunny day.", Answer).Should().Be(1);
        NeedleScorers.WordRecallFixed("eat a sandwich and sit in dolores park on a sunny day", Answer).Should().Be(1);
        // {in, eat, a, sandwich} of 11 distinct words.
        NeedleScorers.WordRecallFixed("The best thing to do in San Francisco is eat a sandwich.", Answer).Should().BeApproximately(4.0 / 11, 1e-12);
    }

    [Fact]
    public void String_match_all_counts_values_found_case_insensitively()
    {
        NeedleScorers.StringMatchAll("The numbers are 1234567 and 7654321.", ["1234567", "7654321", "1111111"]).Should().BeApproximately(2.0 / 3, 1e-12);
        NeedleScorers.StringMatchAll("GOAT CHEESE and figs", NeedleTask.GkamradtPizza.ExpectedValues).Should().BeApproximately(2.0 / 3, 1e-12);
    }

    [Fact]
    public void All_scores_hold_every_scorer_that_applies()
    {
        var scores = NeedleScorers.All("eat a sandwich", NeedleTask.Paper);
        scores.Keys.Should().Equal("rouge1", "word-recall", "word-recall-fixed");
        scores["word-recall"].Should().BeApproximately(3.0 / 12, 1e-12);
    }
}
