/* Unit tests for transport/url.c. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "transport/url.h"

START_TEST(good)
{
	tsm__url u;
	char buf[128];
	ck_assert_int_eq(tsm__url_parse("tcp://127.0.0.1:5555", &u), TSM_OK);
	tsm__url_format(&u, buf, sizeof(buf));
	ck_assert_str_eq(buf, "tcp://127.0.0.1:5555");
	ck_assert_int_eq(tsm__url_parse("tcp://[::1]:80", &u), TSM_OK);
	tsm__url_format(&u, buf, sizeof(buf));
	ck_assert_str_eq(buf, "tcp://[::1]:80");
	ck_assert_int_eq(tsm__url_parse("tcp://localhost:0", &u), TSM_OK);
	tsm__url_format(&u, buf, sizeof(buf));
	ck_assert_str_eq(buf, "tcp://127.0.0.1:0");
	ck_assert_int_eq(tsm__url_parse("inproc://a.b-c_1", &u), TSM_OK);
	ck_assert_int_eq(u.scheme, TSM_URL_INPROC);
	ck_assert_str_eq(u.name, "a.b-c_1");
}
END_TEST

START_TEST(bad)
{
	static const char *const bads[] = {
		"", "tcp://", "tcp://127.0.0.1", "tcp://127.0.0.1:", "tcp://1.2.3.4:65536",
		"tcp://1.2.3.4:-1", "tcp://1.2.3.4:12x", "tcp://example.com:80",
		"tcp://[::1:80", "tcp://[::1]80", "udp://1.2.3.4:5", "inproc://",
		"inproc://a/b", "inproc://sp ace", "TCP://1.2.3.4:5",
	};
	tsm__url u;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		tsm__err_clear();
		ck_assert_msg(tsm__url_parse(bads[i], &u) == TSM_ERR_BAD_URL, "%s", bads[i]);
		ck_assert_msg(tsm_err_detail()[0] != '\0', "no detail for %s", bads[i]);
	}
	ck_assert_int_eq(tsm__url_parse(NULL, &u), TSM_ERR_BAD_URL);
	char longname[80];
	memset(longname, 'a', sizeof(longname));
	memcpy(longname, "inproc://", 9);
	longname[79] = '\0';
	ck_assert_int_eq(tsm__url_parse(longname, &u), TSM_ERR_BAD_URL);
}
END_TEST

START_TEST(ofi_not_built)
{
	tsm__url u;
	ck_assert_int_eq(tsm__url_parse("ofi+tcp://1.2.3.4:5", &u), TSM_OK);
	ck_assert_int_eq(u.scheme, TSM_URL_OFI);
	ck_assert_str_eq(u.ofi_provider, "tcp;ofi_rxm");
	ck_assert_int_eq(tsm__url_parse("ofi+tcp://nohost", &u), TSM_ERR_BAD_URL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("url");
	TCase *tc = tcase_create("url");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, good);
	tcase_add_test(tc, bad);
	tcase_add_test(tc, ofi_not_built);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
