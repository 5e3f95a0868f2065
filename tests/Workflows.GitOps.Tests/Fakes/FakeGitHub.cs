using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Workflows.GitOps.Tests.Fakes;

/// <summary>
/// A local GitHub REST server (Kestrel on 127.0.0.1, random port) for the endpoints the bot uses, under /api/v3 as
/// on GitHub Enterprise (Octokit's layout for any host but github.com). Responses follow the shapes in GitHub's REST
/// docs (ids, node_id, html_url, user{login}, created_at, ...). It keeps state (comments, labels, statuses) and
/// records every request so tests can assert the exact calls.
/// </summary>
public sealed partial class FakeGitHub : IAsyncDisposable
{
    public sealed record Request(string Method, string Path, string Query, string? Body, string? Authorization, string? UserAgent)
    {
        public JsonNode? Json => string.IsNullOrEmpty(Body) ? null : JsonNode.Parse(Body);

        public override string ToString() => $"{Method} {Path}{Query}";
    }

    public sealed class Comment
    {
        public long Id { get; init; }
        public int Issue { get; init; }
        public required string Body { get; set; }
        public required string Author { get; init; }
        public DateTimeOffset CreatedAt { get; init; }
        public DateTimeOffset UpdatedAt { get; set; }
    }

    public sealed class PullRequest
    {
        public int Number { get; init; }
        public required string HeadRepo { get; init; }
        public string HeadRef { get; init; } = "feature";
        public required string HeadSha { get; set; }
        public required string Author { get; init; }
        public string State { get; set; } = "open";
        public bool Draft { get; init; }
        public List<string> Labels { get; } = [];
        public List<(string Path, string Status, string? Previous)> Files { get; } = [];
    }

    public sealed record Status(string Sha, string State, string Context, string? Description, string? TargetUrl, DateTimeOffset CreatedAt);

    private readonly WebApplication app;
    private readonly Lock gate = new();
    private long nextId = 1000;
    private DateTimeOffset clock = new(2024, 2, 15, 12, 0, 0, TimeSpan.Zero);

    private FakeGitHub(WebApplication app, string owner, string repo, string token)
    {
        this.app = app;
        Owner = owner;
        Repo = repo;
        Token = token;
    }

    public string Owner { get; }
    public string Repo { get; }
    public string Token { get; }
    public string FullName => $"{Owner}/{Repo}";

    /// <summary>The server's root, e.g. http://127.0.0.1:41234/ (Octokit adds api/v3/).</summary>
    public Uri BaseUrl { get; private set; } = null!;

    /// <summary>GitHub caps per_page at 100; tests lower this to exercise pagination.</summary>
    public int MaxPerPage { get; set; } = 100;

    public List<Comment> Comments { get; } = [];
    public Dictionary<int, PullRequest> PullRequests { get; } = [];
    public List<Status> Statuses { get; } = [];

    /// <summary>
    /// Read-only settings endpoints (environments, deployment branch policies, secrets, variables, rulesets, branch
    /// protection, workflow permissions): the path under the repository (e.g. <c>/environments/experiment-runs</c>) →
    /// the JSON body GitHub's docs show for it. A path not listed answers 404, as GitHub does for a missing setting.
    /// </summary>
    public Dictionary<string, JsonNode> Settings { get; } = new(StringComparer.Ordinal);

    /// <summary>Paths under the repository that answer 403 (a token that may not read them).</summary>
    public HashSet<string> Forbidden { get; } = new(StringComparer.Ordinal);

    /// <summary>The repository activity log (GET /activity): pushes with GitHub's timestamps.</summary>
    public List<(string Ref, string Type, string Before, string After, DateTimeOffset Timestamp, string Actor)> Activity { get; } = [];

    /// <summary>Issue events (GET /issues/{n}/events): labeled events with their actor.</summary>
    public List<(int Issue, string Event, string Label, string Actor, DateTimeOffset CreatedAt)> IssueEvents { get; } = [];

    public string DefaultBranch { get; set; } = "main";

    /// <summary>login → (permission, role_name), as the permission endpoint reports them. Unknown logins get 404.</summary>
    public Dictionary<string, (string Permission, string RoleName)> Collaborators { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The login the token belongs to: author of the comments the bot creates.</summary>
    public string TokenOwner { get; set; } = "github-actions[bot]";

    private readonly List<Request> requests = [];

    public IReadOnlyList<Request> Requests
    {
        get
        {
            lock (gate)
            {
                return requests.ToList();
            }
        }
    }

    public void ClearRequests()
    {
        lock (gate)
        {
            requests.Clear();
        }
    }

    public static async Task<FakeGitHub> StartAsync(string owner = "acme", string repo = "longctx", string token = "test-token")
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var fake = new FakeGitHub(app, owner, repo, token);
        app.Run(fake.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        fake.BaseUrl = new Uri(address.EndsWith('/') ? address : address + "/");
        return fake;
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }

    public PullRequest AddPullRequest(int number, string author, string headSha, string? headRepo = null, params (string Path, string Status)[] files)
    {
        var pr = new PullRequest { Number = number, Author = author, HeadSha = headSha, HeadRepo = headRepo ?? FullName };
        foreach (var (path, status) in files)
        {
            pr.Files.Add((path, status, null));
        }

        lock (gate)
        {
            PullRequests[number] = pr;
        }

        return pr;
    }

    /// <summary>A label added by <paramref name="actor"/>, with its labeled event (the UI's way, not the bot's).</summary>
    public void AddLabel(int number, string label, string actor)
    {
        lock (gate)
        {
            clock = clock.AddMinutes(1);
            PullRequests[number].Labels.Add(label);
            IssueEvents.Add((number, "labeled", label, actor, clock));
        }
    }

    /// <summary>A push to a pull request's branch at GitHub's clock (moves its head), logged in the activity log.</summary>
    public DateTimeOffset Push(int number, string newSha, string actor = "alice")
    {
        lock (gate)
        {
            clock = clock.AddMinutes(1);
            var pr = PullRequests[number];
            Activity.Add(($"refs/heads/{pr.HeadRef}", "push", pr.HeadSha, newSha, clock, actor));
            pr.HeadSha = newSha;
            return clock;
        }
    }

    /// <summary>Advances GitHub's clock and returns it (e.g. the time a comment is written).</summary>
    public DateTimeOffset Tick()
    {
        lock (gate)
        {
            clock = clock.AddMinutes(1);
            return clock;
        }
    }

    public Comment AddComment(int issue, string author, string body)
    {
        lock (gate)
        {
            clock = clock.AddMinutes(1);
            var c = new Comment { Id = ++nextId, Issue = issue, Author = author, Body = body, CreatedAt = clock, UpdatedAt = clock };
            Comments.Add(c);
            return c;
        }
    }

    // ---- routing ----------------------------------------------------------------------------------------------

    [GeneratedRegex(@"^/api/v3/repos/(?<o>[^/]+)/(?<r>[^/]+)(?<rest>/.*)?$")]
    private static partial Regex RepoPath();

    private async Task HandleAsync(HttpContext ctx)
    {
        string? body = null;
        if (ctx.Request.ContentLength is > 0 || ctx.Request.Headers.TransferEncoding.Count > 0)
        {
            using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
            body = await reader.ReadToEndAsync();
        }

        var path = Uri.UnescapeDataString(ctx.Request.Path.Value ?? "");
        var request = new Request(ctx.Request.Method, path, ctx.Request.QueryString.Value ?? "", body,
            ctx.Request.Headers.Authorization.ToString(), ctx.Request.Headers.UserAgent.ToString());
        lock (gate)
        {
            requests.Add(request);
        }

        // Auth schemes are case-insensitive (RFC 9110); Octokit sends "Token X", GitHub documents "token X" and "Bearer X".
        var auth = (request.Authorization ?? "").Split(' ', 2);
        if (auth.Length != 2 || auth[0].ToUpperInvariant() is not ("TOKEN" or "BEARER") || auth[1] != Token)
        {
            await Reply(ctx, 401, new JsonObject { ["message"] = "Bad credentials", ["documentation_url"] = "https://docs.github.com/rest" });
            return;
        }

        var m = RepoPath().Match(path);
        if (!m.Success || m.Groups["o"].Value != Owner || m.Groups["r"].Value != Repo)
        {
            await NotFound(ctx);
            return;
        }

        var rest = m.Groups["rest"].Success ? m.Groups["rest"].Value : "";
        var (status, json, headers) = Route(ctx.Request.Method, rest, ctx.Request.Query, request.Json);
        foreach (var (k, v) in headers)
        {
            ctx.Response.Headers[k] = v;
        }

        await Reply(ctx, status, json);
    }

    private (int Status, JsonNode? Body, List<(string, string)> Headers) Route(string method, string rest, IQueryCollection query, JsonNode? body)
    {
        lock (gate)
        {
            Match m;
            if (method == "GET" && Forbidden.Contains(rest))
            {
                return (403, new JsonObject { ["message"] = "Resource not accessible by integration", ["documentation_url"] = "https://docs.github.com/rest", ["status"] = "403" }, []);
            }

            if (method == "GET" && rest.Length == 0)
            {
                var repo = RepoJson(FullName);
                repo["default_branch"] = DefaultBranch;
                return (200, repo, []);
            }

            if (method == "GET" && Settings.TryGetValue(rest, out var setting))
            {
                return (200, setting.DeepClone(), []);
            }

            if (method == "GET" && rest == "/activity")
            {
                var array = new JsonArray();
                var items = Activity.Where(a => query["ref"].Count == 0 || a.Ref == query["ref"].ToString()).OrderByDescending(a => a.Timestamp);
                foreach (var a in items.Take(int.TryParse(query["per_page"], out var n) ? n : 30))
                {
                    array.Add(new JsonObject
                    {
                        ["id"] = IdOf(a.After),
                        ["node_id"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"RA:{a.After}")),
                        ["before"] = a.Before,
                        ["after"] = a.After,
                        ["ref"] = a.Ref,
                        ["timestamp"] = Iso(a.Timestamp),
                        ["activity_type"] = a.Type,
                        ["actor"] = UserJson(a.Actor),
                    });
                }

                return (200, array, []);
            }

            if ((m = Regex.Match(rest, @"^/issues/(\d+)/events$")).Success && method == "GET")
            {
                var issue = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
                var array = new JsonArray();
                foreach (var e in IssueEvents.Where(e => e.Issue == issue).OrderBy(e => e.CreatedAt))
                {
                    array.Add(new JsonObject
                    {
                        ["id"] = IdOf($"{e.Label}{e.CreatedAt.Ticks}"),
                        ["node_id"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"LE:{e.CreatedAt.Ticks}")),
                        ["url"] = Api($"/repos/{FullName}/issues/events/{IdOf(e.Label)}"),
                        ["actor"] = UserJson(e.Actor),
                        ["event"] = e.Event,
                        ["commit_id"] = null,
                        ["commit_url"] = null,
                        ["created_at"] = Iso(e.CreatedAt),
                        ["label"] = new JsonObject { ["name"] = e.Label, ["color"] = "ededed" },
                    });
                }

                return (200, array, []);
            }

            if ((m = Regex.Match(rest, @"^/issues/(\d+)/comments$")).Success && method == "GET")
            {
                return ListComments(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), query);
            }

            if ((m = Regex.Match(rest, @"^/issues/(\d+)/comments$")).Success && method == "POST")
            {
                var text = body?["body"]?.GetValue<string>();
                if (text is null)
                {
                    return Invalid("body is missing");
                }

                clock = clock.AddMinutes(1);
                var c = new Comment { Id = ++nextId, Issue = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Body = text, Author = TokenOwner, CreatedAt = clock, UpdatedAt = clock };
                Comments.Add(c);
                return (201, CommentJson(c), [("Location", $"{BaseUrl}api/v3/repos/{FullName}/issues/comments/{c.Id}")]);
            }

            if ((m = Regex.Match(rest, @"^/issues/comments/(\d+)$")).Success && method == "PATCH")
            {
                var c = Comments.FirstOrDefault(x => x.Id == long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
                var text = body?["body"]?.GetValue<string>();
                if (c is null)
                {
                    return NotFoundResult();
                }

                if (text is null)
                {
                    return Invalid("body is missing");
                }

                clock = clock.AddMinutes(1);
                c.Body = text;
                c.UpdatedAt = clock;
                return (200, CommentJson(c), []);
            }

            if ((m = Regex.Match(rest, @"^/collaborators/([^/]+)/permission$")).Success && method == "GET")
            {
                var login = m.Groups[1].Value;
                if (!Collaborators.TryGetValue(login, out var p))
                {
                    return NotFoundResult();
                }

                return (200, new JsonObject
                {
                    ["permission"] = p.Permission,
                    ["role_name"] = p.RoleName,
                    ["user"] = UserJson(login, collaborator: true, p.Permission),
                }, []);
            }

            if ((m = Regex.Match(rest, @"^/pulls/(\d+)$")).Success && method == "GET")
            {
                return PullRequests.TryGetValue(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), out var pr)
                    ? (200, PullJson(pr), [])
                    : NotFoundResult();
            }

            if ((m = Regex.Match(rest, @"^/pulls/(\d+)/files$")).Success && method == "GET")
            {
                if (!PullRequests.TryGetValue(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), out var pr))
                {
                    return NotFoundResult();
                }

                var array = new JsonArray();
                foreach (var f in pr.Files)
                {
                    array.Add(FileJson(pr, f));
                }

                return (200, array, []);
            }

            if ((m = Regex.Match(rest, @"^/issues/(\d+)/labels$")).Success && method == "POST")
            {
                if (!PullRequests.TryGetValue(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), out var pr))
                {
                    return NotFoundResult();
                }

                // GitHub accepts {"labels": [...]} or a bare array.
                var names = (body is JsonArray a ? a : body?["labels"] as JsonArray)?.Select(n => n!.GetValue<string>()).ToList();
                if (names is null)
                {
                    return Invalid("labels are missing");
                }

                foreach (var n in names.Where(n => !pr.Labels.Contains(n)))
                {
                    pr.Labels.Add(n);
                }

                return (200, LabelsJson(pr), []);
            }

            if ((m = Regex.Match(rest, @"^/issues/(\d+)/labels/(.+)$")).Success && method == "DELETE")
            {
                if (!PullRequests.TryGetValue(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), out var pr) || !pr.Labels.Remove(m.Groups[2].Value))
                {
                    return (404, new JsonObject { ["message"] = "Label does not exist", ["documentation_url"] = "https://docs.github.com/rest/issues/labels#remove-a-label-from-an-issue" }, []);
                }

                return (200, LabelsJson(pr), []);
            }

            if ((m = Regex.Match(rest, @"^/statuses/([0-9a-f]{40})$")).Success && method == "POST")
            {
                var state = body?["state"]?.GetValue<string>();
                if (state is not ("pending" or "success" or "failure" or "error"))
                {
                    return Invalid($"state '{state}' is not one of error, failure, pending, success");
                }

                clock = clock.AddMinutes(1);
                var s = new Status(m.Groups[1].Value, state, body?["context"]?.GetValue<string>() ?? "default",
                    body?["description"]?.GetValue<string>(), body?["target_url"]?.GetValue<string>(), clock);
                Statuses.Add(s);
                return (201, StatusJson(s, Statuses.Count), []);
            }

            return NotFoundResult();
        }
    }

    private (int, JsonNode?, List<(string, string)>) ListComments(int issue, IQueryCollection query)
    {
        var perPage = Math.Min(MaxPerPage, int.TryParse(query["per_page"], out var pp) ? pp : 30);
        var page = int.TryParse(query["page"], out var pg) ? pg : 1;
        var all = Comments.Where(c => c.Issue == issue).OrderBy(c => c.CreatedAt).ToList();
        var array = new JsonArray();
        foreach (var c in all.Skip((page - 1) * perPage).Take(perPage))
        {
            array.Add(CommentJson(c));
        }

        var headers = new List<(string, string)>();
        var last = Math.Max(1, (all.Count + perPage - 1) / perPage);
        if (page < last)
        {
            var url = $"{BaseUrl}api/v3/repos/{FullName}/issues/{issue}/comments?per_page={perPage}";
            headers.Add(("Link", $"<{url}&page={page + 1}>; rel=\"next\", <{url}&page={last}>; rel=\"last\""));
        }

        return (200, array, headers);
    }

    // ---- response shapes (from GitHub's REST docs) ------------------------------------------------------------

    private string Api(string rest) => $"{BaseUrl}api/v3{rest}";

    private static string Html(string rest) => $"https://github.example.com{rest}";

    private static long IdOf(string login) => 1 + (uint)login.GetHashCode(StringComparison.Ordinal) % 100000;

    private JsonObject UserJson(string login, bool collaborator = false, string? permission = null)
    {
        var user = new JsonObject
        {
            ["login"] = login,
            ["id"] = IdOf(login),
            ["node_id"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"04:User{IdOf(login)}")),
            ["avatar_url"] = $"https://avatars.example.com/u/{IdOf(login)}?v=4",
            ["gravatar_id"] = "",
            ["url"] = Api($"/users/{login}"),
            ["html_url"] = Html($"/{login}"),
            ["type"] = login.EndsWith("[bot]", StringComparison.Ordinal) ? "Bot" : "User",
            ["site_admin"] = false,
        };
        if (collaborator)
        {
            user["permissions"] = new JsonObject
            {
                ["admin"] = permission == "admin",
                ["maintain"] = permission is "admin",
                ["push"] = permission is "admin" or "write",
                ["triage"] = permission is "admin" or "write",
                ["pull"] = permission is "admin" or "write" or "read",
            };
            user["role_name"] = permission;
        }

        return user;
    }

    private JsonObject CommentJson(Comment c) => new()
    {
        ["id"] = c.Id,
        ["node_id"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"012:IssueComment{c.Id}")),
        ["url"] = Api($"/repos/{FullName}/issues/comments/{c.Id}"),
        ["html_url"] = Html($"/{FullName}/pull/{c.Issue}#issuecomment-{c.Id}"),
        ["issue_url"] = Api($"/repos/{FullName}/issues/{c.Issue}"),
        ["body"] = c.Body,
        ["user"] = UserJson(c.Author),
        ["created_at"] = Iso(c.CreatedAt),
        ["updated_at"] = Iso(c.UpdatedAt),
        ["author_association"] = c.Author.EndsWith("[bot]", StringComparison.Ordinal) ? "NONE" : "COLLABORATOR",
    };

    private JsonObject RepoJson(string fullName)
    {
        var owner = fullName.Split('/')[0];
        return new JsonObject
        {
            ["id"] = IdOf(fullName),
            ["node_id"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"010:Repository{IdOf(fullName)}")),
            ["name"] = fullName.Split('/')[1],
            ["full_name"] = fullName,
            ["owner"] = UserJson(owner),
            ["private"] = false,
            ["html_url"] = Html($"/{fullName}"),
            ["description"] = null,
            ["fork"] = fullName != FullName,
            ["url"] = Api($"/repos/{fullName}"),
            ["default_branch"] = "main",
            ["visibility"] = "public",
            ["created_at"] = "2024-01-01T00:00:00Z",
            ["updated_at"] = "2024-01-01T00:00:00Z",
            ["pushed_at"] = "2024-01-01T00:00:00Z",
        };
    }

    private JsonObject LabelJson(string name) => new()
    {
        ["id"] = IdOf("label:" + name),
        ["node_id"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"05:Label{IdOf(name)}")),
        ["url"] = Api($"/repos/{FullName}/labels/{Uri.EscapeDataString(name)}"),
        ["name"] = name,
        ["description"] = null,
        ["color"] = "ededed",
        ["default"] = false,
    };

    private JsonArray LabelsJson(PullRequest pr) => new(pr.Labels.Select(l => (JsonNode)LabelJson(l)).ToArray());

    private JsonObject PullJson(PullRequest pr) => new()
    {
        ["url"] = Api($"/repos/{FullName}/pulls/{pr.Number}"),
        ["id"] = 9000 + pr.Number,
        ["node_id"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"011:PullRequest{pr.Number}")),
        ["html_url"] = Html($"/{FullName}/pull/{pr.Number}"),
        ["number"] = pr.Number,
        ["state"] = pr.State,
        ["locked"] = false,
        ["title"] = "Add an experiment",
        ["user"] = UserJson(pr.Author),
        ["body"] = "",
        ["labels"] = LabelsJson(pr),
        ["created_at"] = "2024-02-15T10:00:00Z",
        ["updated_at"] = "2024-02-15T10:00:00Z",
        ["closed_at"] = null,
        ["merged_at"] = null,
        ["merge_commit_sha"] = null,
        ["draft"] = pr.Draft,
        ["head"] = new JsonObject
        {
            ["label"] = $"{pr.HeadRepo.Split('/')[0]}:{pr.HeadRef}",
            ["ref"] = pr.HeadRef,
            ["sha"] = pr.HeadSha,
            ["user"] = UserJson(pr.HeadRepo.Split('/')[0]),
            ["repo"] = RepoJson(pr.HeadRepo),
        },
        ["base"] = new JsonObject
        {
            ["label"] = $"{Owner}:main",
            ["ref"] = "main",
            ["sha"] = new string('b', 40),
            ["user"] = UserJson(Owner),
            ["repo"] = RepoJson(FullName),
        },
        ["author_association"] = "CONTRIBUTOR",
        ["merged"] = false,
        ["mergeable"] = true,
        ["comments"] = Comments.Count(c => c.Issue == pr.Number),
        ["commits"] = 1,
        ["additions"] = 10,
        ["deletions"] = 0,
        ["changed_files"] = pr.Files.Count,
    };

    private JsonObject FileJson(PullRequest pr, (string Path, string Status, string? Previous) f)
    {
        var o = new JsonObject
        {
            ["sha"] = new string('f', 40),
            ["filename"] = f.Path,
            ["status"] = f.Status,
            ["additions"] = f.Status == "removed" ? 0 : 10,
            ["deletions"] = f.Status == "added" ? 0 : 2,
            ["changes"] = 12,
            ["blob_url"] = Html($"/{FullName}/blob/{pr.HeadSha}/{f.Path}"),
            ["raw_url"] = Html($"/{FullName}/raw/{pr.HeadSha}/{f.Path}"),
            ["contents_url"] = Api($"/repos/{FullName}/contents/{f.Path}?ref={pr.HeadSha}"),
            ["patch"] = "@@ -1 +1 @@",
        };
        if (f.Previous is not null)
        {
            o["previous_filename"] = f.Previous;
        }

        return o;
    }

    private JsonObject StatusJson(Status s, int id) => new()
    {
        ["url"] = Api($"/repos/{FullName}/statuses/{s.Sha}"),
        ["avatar_url"] = "https://avatars.example.com/u/1?v=4",
        ["id"] = id,
        ["node_id"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"013:StatusContext{id}")),
        ["state"] = s.State,
        ["description"] = s.Description,
        ["target_url"] = s.TargetUrl,
        ["context"] = s.Context,
        ["created_at"] = Iso(s.CreatedAt),
        ["updated_at"] = Iso(s.CreatedAt),
        ["creator"] = UserJson(TokenOwner),
    };

    private static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static (int, JsonNode?, List<(string, string)>) NotFoundResult() =>
        (404, new JsonObject { ["message"] = "Not Found", ["documentation_url"] = "https://docs.github.com/rest" }, []);

    private static (int, JsonNode?, List<(string, string)>) Invalid(string message) =>
        (422, new JsonObject { ["message"] = "Validation Failed", ["errors"] = new JsonArray(new JsonObject { ["message"] = message }), ["documentation_url"] = "https://docs.github.com/rest" }, []);

    private static Task NotFound(HttpContext ctx) =>
        Reply(ctx, 404, new JsonObject { ["message"] = "Not Found", ["documentation_url"] = "https://docs.github.com/rest" });

    private static async Task Reply(HttpContext ctx, int status, JsonNode? json)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        ctx.Response.Headers["X-GitHub-Media-Type"] = "github.v3; format=json";
        await ctx.Response.WriteAsync(json?.ToJsonString() ?? "");
    }
}
