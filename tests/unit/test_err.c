/* Unit tests for core/err.c: names, sentences, classes, detail. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

START_TEST(names_and_classes)
{
	ck_assert_str_eq(tsm_err_name(TSM_OK), "OK");
	ck_assert_str_eq(tsm_err_name(TSM_ERR_DEADLINE_EXPIRED), "DEADLINE_EXPIRED");
	ck_assert_str_eq(tsm_err_name(TSM_ERR_AUTHZ_DENIED), "AUTHZ_DENIED");
	ck_assert_int_eq(tsm_err_class(TSM_ERR_AUTHZ_DENIED), TSM_ESECURITY);
	ck_assert_int_eq(tsm_err_class(TSM_ERR_QUEUE_FULL), TSM_EAGAIN);
	ck_assert_int_eq(tsm_err_class(TSM_ERR_TRUNCATED), TSM_EPROTO);
	ck_assert_int_eq(tsm_err_class(TSM_ETIMEDOUT), TSM_ETIMEDOUT);
	ck_assert_str_eq(tsm_err_name((tsm_err)0x7fff00), "UNKNOWN");
	ck_assert_str_eq(tsm_strerror((tsm_err)0x7fff00), "unknown error");
	ck_assert_ptr_nonnull(strstr(tsm_strerror(TSM_ERR_NO_CREDENTIALS), "credentials"));
}
END_TEST

START_TEST(every_reason_of_security_md_named)
{
	static const struct { tsm_err e; const char *n; } r[] = {
		{TSM_ERR_NO_PEER_CERT, "NO_PEER_CERT"}, {TSM_ERR_UNKNOWN_CA, "UNKNOWN_CA"},
		{TSM_ERR_CERT_EXPIRED, "CERT_EXPIRED"},
		{TSM_ERR_CERT_NOT_YET_VALID, "CERT_NOT_YET_VALID"},
		{TSM_ERR_CERT_REVOKED, "CERT_REVOKED"},
		{TSM_ERR_CRL_UNAVAILABLE, "CRL_UNAVAILABLE"},
		{TSM_ERR_SPIFFE_MALFORMED, "SPIFFE_MALFORMED"},
		{TSM_ERR_PEER_ID_MISMATCH, "PEER_ID_MISMATCH"},
		{TSM_ERR_TLS_VERSION, "TLS_VERSION"}, {TSM_ERR_ALPN_MISMATCH, "ALPN_MISMATCH"},
		{TSM_ERR_AUTHZ_DENIED, "AUTHZ_DENIED"}, {TSM_ERR_PREAUTH_LIMIT, "PREAUTH_LIMIT"},
		{TSM_ERR_HANDSHAKE_TIMEOUT, "HANDSHAKE_TIMEOUT"},
		{TSM_ERR_AEAD_FAIL, "AEAD_FAIL"}, {TSM_ERR_REPLAY, "REPLAY"},
		{TSM_ERR_MSG_TOO_LARGE, "MSG_TOO_LARGE"}, {TSM_ERR_BAD_METADATA, "BAD_METADATA"},
		{TSM_ERR_DEADLINE_EXPIRED, "DEADLINE_EXPIRED"},
		{TSM_ERR_PRIORITY_CAP, "PRIORITY_CAP"}, {TSM_ERR_QUEUE_FULL, "QUEUE_FULL"},
		{TSM_ERR_PEER_LOST, "PEER_LOST"},
	};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		ck_assert_str_eq(tsm_err_name(r[i].e), r[i].n);
		ck_assert_str_ne(tsm_strerror(r[i].e), "unknown error");
	}
}
END_TEST

START_TEST(detail_is_per_thread_and_clearable)
{
	ck_assert_int_eq(tsm__err_set(TSM_EINVAL, "where=%d", 42), TSM_EINVAL);
	ck_assert_str_eq(tsm_err_detail(), "where=42");
	/* Wrapping the previous detail must not garble it. */
	tsm__err_set(TSM_EINVAL, "inner %s", "why");
	tsm__err_set(TSM_EINVAL, "outer: %s", tsm_err_detail());
	ck_assert_str_eq(tsm_err_detail(), "outer: inner why");
	tsm__err_clear();
	ck_assert_str_eq(tsm_err_detail(), "");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("err");
	TCase *tc = tcase_create("err");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, names_and_classes);
	tcase_add_test(tc, every_reason_of_security_md_named);
	tcase_add_test(tc, detail_is_per_thread_and_clearable);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
