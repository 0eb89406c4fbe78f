/*
 * A tiny static multi-call program for the lab's non-cp-plugin images, chosen by the name it
 * is run as (like busybox, but installed as copies, not hard links):
 *   sh -c 'CMD ARG...'      runs one simple command: words split on blanks, each word with
 *                           * ? or [ expanded against its directory (sorted, like a shell),
 *                           then execvp. No quotes, variables, redirections or operators:
 *                           anything else is refused, so a test never depends on a partial
 *                           shell.
 *   cp [-r|-R|-a|-p|-f]... SRC... DST
 *                           copies files (directories too with -r); a DST that is a directory
 *                           receives DST/basename(SRC), and DIR/. copies DIR's contents, as in
 *                           coreutils. Modes are kept (less the umask); owners are not.
 *   sleep infinity | sleep SECONDS
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORDS 256

static const char *prog;

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "%s: %s %s: %s\n", prog, what, path, strerror(errno));
    return 1;
}

/* ---- cp ---- */

static int copy_path(const char *src, const char *dst, int recursive);

static int copy_file(const char *src, const char *dst, mode_t mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return fail("open", src);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 07777);
    if (out < 0) {
        close(in);
        return fail("create", dst);
    }
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail("read", src);
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return fail("write", dst);
            }
            off += w;
        }
    }
    close(in);
    if (close(out) < 0)
        return fail("close", dst);
    return 0;
}

static int copy_dir(const char *src, const char *dst, mode_t mode)
{
    if (mkdir(dst, mode & 07777) < 0 && errno != EEXIST)
        return fail("mkdir", dst);
    DIR *d = opendir(src);
    if (!d)
        return fail("open directory", src);
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char s[4096], t[4096];
        snprintf(s, sizeof s, "%s/%s", src, e->d_name);
        snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
        rc |= copy_path(s, t, 1);
    }
    closedir(d);
    return rc;
}

static int copy_path(const char *src, const char *dst, int recursive)
{
    struct stat st;
    if (stat(src, &st) < 0)
        return fail("stat", src);
    if (S_ISDIR(st.st_mode)) {
        if (!recursive) {
            fprintf(stderr, "%s: -r not given; omitting directory %s\n", prog, src);
            return 1;
        }
        return copy_dir(src, dst, st.st_mode);
    }
    return copy_file(src, dst, st.st_mode);
}

static int cp_main(int argc, char **argv)
{
    int recursive = 0, i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        for (const char *f = argv[i] + 1; *f; f++) {
            if (*f == 'r' || *f == 'R' || *f == 'a')
                recursive = 1;
            else if (*f != 'p' && *f != 'f') {
                fprintf(stderr, "%s: unsupported option -%c\n", prog, *f);
                return 2;
            }
        }
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: cp [-r] SRC... DST\n");
        return 2;
    }
    const char *dst = argv[argc - 1];
    struct stat st;
    int into_dir = stat(dst, &st) == 0 && S_ISDIR(st.st_mode);
    if (argc - i > 2 && !into_dir) {
        fprintf(stderr, "%s: target %s is not a directory\n", prog, dst);
        return 1;
    }
    int rc = 0;
    for (; i < argc - 1; i++) {
        if (!into_dir) {
            rc |= copy_path(argv[i], dst, recursive);
            continue;
        }
        const char *slash = strrchr(argv[i], '/');
        const char *base = slash ? slash + 1 : argv[i];
        char t[4096];
        /* DIR/. names DIR itself, so DST/. is DST: the contents are merged into it. */
        snprintf(t, sizeof t, "%s/%s", dst, base);
        rc |= copy_path(argv[i], t, recursive);
    }
    return rc;
}

/* ---- sh -c ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expands a word whose last component holds a pattern; appends matches to words. */
static int expand(char *word, char **words, int *n)
{
    char *slash = strrchr(word, '/');
    const char *pattern = slash ? slash + 1 : word;
    if (!strpbrk(pattern, "*?[")) {
        words[(*n)++] = word;
        return 0;
    }
    if (slash && strpbrk(word, "*?[") < slash) {
        fprintf(stderr, "%s: patterns only in the last path component: %s\n", prog, word);
        return 2;
    }
    char dir[4096];
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - word), word);
    else
        strcpy(dir, ".");
    DIR *d = opendir(slash && slash == word ? "/" : dir);
    int first = *n;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL && *n < MAX_WORDS - 1) {
            if (e->d_name[0] == '.' && pattern[0] != '.')
                continue;
            if (fnmatch(pattern, e->d_name, FNM_PERIOD) != 0)
                continue;
            size_t len = strlen(dir) + strlen(e->d_name) + 2;
            char *m = malloc(len);
            snprintf(m, len, "%s/%s", slash ? dir : ".", e->d_name);
            words[(*n)++] = slash ? m : m + 2;
        }
        closedir(d);
    }
    if (*n == first)
        words[(*n)++] = word; /* no match: the word stays as it is, as in POSIX sh */
    else
        qsort(words + first, (size_t)(*n - first), sizeof *words, cmp_str);
    return 0;
}

static int sh_main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "-c") != 0) {
        fprintf(stderr, "%s: only `sh -c 'COMMAND ARG...'` is supported\n", prog);
        return 2;
    }
    char *line = argv[2];
    if (strpbrk(line, "'\"\\$`;&|<>(){}~\n")) {
        fprintf(stderr, "%s: only a simple command is supported: %s\n", prog, line);
        return 2;
    }
    char *words[MAX_WORDS];
    int n = 0;
    for (char *w = strtok(line, " \t"); w; w = strtok(NULL, " \t")) {
        if (n >= MAX_WORDS - 1)
            return 2;
        int rc = expand(w, words, &n);
        if (rc)
            return rc;
    }
    if (n == 0)
        return 0;
    words[n] = NULL;
    execvp(words[0], words);
    fprintf(stderr, "%s: %s: %s\n", prog, words[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

/* ---- sleep ---- */

static int sleep_main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: sleep infinity|SECONDS\n");
        return 2;
    }
    int forever = strcmp(argv[1], "infinity") == 0;
    struct timespec left = {forever ? 3600 : atol(argv[1]), 0};
    do {
        while (nanosleep(&left, &left) < 0 && errno == EINTR)
            ;
        left.tv_sec = 3600;
    } while (forever);
    return 0;
}

int main(int argc, char **argv)
{
    const char *slash = strrchr(argv[0], '/');
    prog = slash ? slash + 1 : argv[0];
    if (!strcmp(prog, "sh"))
        return sh_main(argc, argv);
    if (!strcmp(prog, "cp"))
        return cp_main(argc, argv);
    if (!strcmp(prog, "sleep"))
        return sleep_main(argc, argv);
    fprintf(stderr, "minibox: run as sh, cp or sleep, not %s\n", prog);
    return 2;
}
