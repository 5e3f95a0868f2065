using System.Security.Cryptography;
using System.Text;
using DurableTask.Core;
using DurableTask.Core.Serializing;

namespace Workflows.Engine.Activities;

/// <summary>
/// Every activity's result travels with a tag naming the question it answers (SHA-256 of the activity's name and its
/// serialized input), and the orchestration takes a result only when the tag matches the call it is waiting on.
/// </summary>
/// <remarks>
/// Why: DTFx on Azure Storage sends an episode's messages (activity and timer requests) before it commits the episode's
/// history. When storage fails between the two, the episode is replayed with whatever messages have arrived since, and
/// its task ids can be handed out in a different order; the first episode's timer or activity reply still arrives later
/// and completes whichever task now has its id (DTFx matches replies by id only, not by type or name). A run then failed
/// with "Error converting value 45 to type GpuJobStatus" (timer 45's "fired" reply delivered to a status poll); a
/// fan-out could silently take shard 3's output as shard 5's. With the tag, such a stray reply is recognised and the
/// call is simply scheduled again (activities are idempotent: DTFx delivers them at least once anyway).
/// </remarks>
public static class ActivityReply
{
    private static readonly DataConverter Converter = JsonDataConverter.Default;

    /// <summary>The tag of a call: what the activity receives is what the orchestration serialized (DTFx sends the parameters array).</summary>
    public static string Tag(string activity, string? serializedInput)
    {
        var bytes = SHA256.HashData(Encoding.UTF8.GetBytes(activity + "\n" + serializedInput));
        return Convert.ToHexStringLower(bytes.AsSpan(0, 12));
    }

    /// <summary>The tag the orchestration expects for <paramref name="input"/>, serialized exactly as DTFx's ScheduleTask does.</summary>
    public static string ExpectedTag(string activity, object input) => Tag(activity, Converter.Serialize(new[] { input }));

    /// <summary>The activity side: the inner result (already serialized by DTFx's activity base) behind its tag, as one JSON string.</summary>
    public static string Wrap(string tag, string? serializedResult) => Converter.Serialize(tag + "\n" + serializedResult);

    /// <summary>
    /// The orchestration side: <paramref name="reply"/> (what DTFx delivered, as a string) read as the answer to the call
    /// tagged <paramref name="expectedTag"/>; false when it answers something else (a timer's id, another call's result).
    /// </summary>
    public static bool TryRead<T>(string? reply, string expectedTag, out T value)
    {
        value = default!;
        var newline = reply?.IndexOf('\n', StringComparison.Ordinal) ?? -1;
        if (reply is null || newline < 0 || !reply.AsSpan(0, newline).SequenceEqual(expectedTag))
        {
            return false;
        }

        var result = reply[(newline + 1)..];
        value = result.Length == 0 ? default! : Converter.Deserialize<T>(result);
        return true;
    }

    /// <summary>
    /// Schedules <paramref name="activity"/> once and reads its reply: (true, result), or (false, default) when what
    /// completed the task was a stray reply meant for another task (the caller schedules the call again).
    /// </summary>
    public static async Task<(bool Answered, T Value)> ScheduleAsync<T>(OrchestrationContext context, string activity, object input)
    {
        var expected = ExpectedTag(activity, input);
        string? reply;
        try
        {
            reply = await context.ScheduleTask<string>(activity, ActivityNames.Version, input);
        }
        catch (Newtonsoft.Json.JsonException)
        {
            return (false, default!); // a stray reply that is not even a string (an untagged result)
        }

        return TryRead<T>(reply, expected, out var value) ? (true, value) : (false, default!);
    }
}

/// <summary>The worker side of <see cref="ActivityReply"/>: runs the activity and tags its serialized result.</summary>
public sealed class TaggedActivity(string name, TaskActivity inner) : TaskActivity
{
    public override string Run(TaskContext context, string input) => ActivityReply.Wrap(ActivityReply.Tag(name, input), inner.Run(context, input));

    public override async Task<string> RunAsync(TaskContext context, string input) =>
        ActivityReply.Wrap(ActivityReply.Tag(name, input), await inner.RunAsync(context, input).ConfigureAwait(false));
}
