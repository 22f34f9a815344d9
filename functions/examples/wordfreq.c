/* wordfreq: word frequencies of a text, most frequent first (malloc, a hash table, qsort, printf).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <unifn/function.h>

struct entry {
  char* word;
  unsigned count;
};

static int by_count(const void* a, const void* b) {
  const struct entry *x = a, *y = b;
  if (x->count != y->count) return x->count < y->count ? 1 : -1;
  return strcmp(x->word, y->word);
}

static unsigned long hash(const char* s, size_t n) {
  unsigned long h = 5381;
  for (size_t i = 0; i < n; i++) h = h * 33 + (unsigned char)s[i];
  return h;
}

static int wordfreq(const unifn_request* req, unifn_response* res) {
  size_t cap = 1024, used = 0;
  struct entry* table = calloc(cap, sizeof *table);
  if (!table) return 500;
  const char* text = (const char*)req->body;
  size_t i = 0;
  while (i < req->len) {
    while (i < req->len && !isalnum((unsigned char)text[i])) i++;
    size_t start = i;
    while (i < req->len && isalnum((unsigned char)text[i])) i++;
    size_t n = i - start;
    if (n == 0) continue;
    char* w = malloc(n + 1);
    for (size_t k = 0; k < n; k++) w[k] = (char)tolower((unsigned char)text[start + k]);
    w[n] = 0;
    if (used * 2 >= cap) { /* grow and rehash */
      struct entry* bigger = calloc(cap * 2, sizeof *bigger);
      for (size_t k = 0; k < cap; k++)
        if (table[k].word) {
          size_t h = hash(table[k].word, strlen(table[k].word)) & (cap * 2 - 1);
          while (bigger[h].word) h = (h + 1) & (cap * 2 - 1);
          bigger[h] = table[k];
        }
      free(table);
      table = bigger;
      cap *= 2;
    }
    size_t h = hash(w, n) & (cap - 1);
    while (table[h].word && strcmp(table[h].word, w) != 0) h = (h + 1) & (cap - 1);
    if (table[h].word) {
      table[h].count++;
      free(w);
    } else {
      table[h].word = w;
      table[h].count = 1;
      used++;
    }
  }
  struct entry* list = malloc((used ? used : 1) * sizeof *list);
  size_t m = 0;
  for (size_t k = 0; k < cap; k++)
    if (table[k].word) list[m++] = table[k];
  qsort(list, m, sizeof *list, by_count);
  unifn_printf(res, "%zu distinct words\n", m);
  for (size_t k = 0; k < m && k < 20; k++)
    unifn_printf(res, "%u %s\n", list[k].count, list[k].word);
  for (size_t k = 0; k < m; k++) free(list[k].word);
  free(list);
  free(table);
  return 200;
}

UNIFN_FUNCTION(wordfreq)
