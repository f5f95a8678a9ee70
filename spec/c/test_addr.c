/* test_addr.c: unit tests for engine/base/addr.c (the sandbox's host classes). */
#include "addr.h"
#include "test.h"

TEST(ipv4_forms_read_as_a_browser_reads_them) {
  CHECK_INT(lc_addr_class_of_url("http://127.0.0.1/"), LC_ADDR_LOOPBACK);
  CHECK_INT(lc_addr_class_of_url("http://127.1:8080/x"), LC_ADDR_LOOPBACK);
  CHECK_INT(lc_addr_class_of_url("http://2130706433/"), LC_ADDR_LOOPBACK);
  CHECK_INT(lc_addr_class_of_url("http://0x7f.0.0.1/"), LC_ADDR_LOOPBACK);
  CHECK_INT(lc_addr_class_of_url("http://0177.0.0.1/"), LC_ADDR_LOOPBACK);
  CHECK_INT(lc_addr_class_of_url("http://user:pw@10.1.2.3/"), LC_ADDR_PRIVATE);
  CHECK_INT(lc_addr_class_of_url("http://172.16.0.1/"), LC_ADDR_PRIVATE);
  CHECK_INT(lc_addr_class_of_url("http://172.32.0.1/"), LC_ADDR_PUBLIC);
  CHECK_INT(lc_addr_class_of_url("http://192.168.1.1/"), LC_ADDR_PRIVATE);
  CHECK_INT(lc_addr_class_of_url("http://100.64.0.1/"), LC_ADDR_PRIVATE);
  CHECK_INT(lc_addr_class_of_url("http://169.254.169.254/latest"), LC_ADDR_LINKLOCAL);
  CHECK_INT(lc_addr_class_of_url("http://2852039166/"), LC_ADDR_LINKLOCAL); /* 169.254.169.254 */
  CHECK_INT(lc_addr_class_of_url("http://0.0.0.0/"), LC_ADDR_SPECIAL);
  CHECK_INT(lc_addr_class_of_url("http://224.0.0.1/"), LC_ADDR_SPECIAL);
  CHECK_INT(lc_addr_class_of_url("http://1.2.3.999/"), LC_ADDR_SPECIAL); /* numeric, not valid */
  CHECK_INT(lc_addr_class_of_url("https://93.184.216.34/"), LC_ADDR_PUBLIC);
}

TEST(ipv6_and_names) {
  CHECK_INT(lc_addr_class_of_url("http://[::1]:9/"), LC_ADDR_LOOPBACK);
  CHECK_INT(lc_addr_class_of_url("http://[::ffff:127.0.0.1]/"), LC_ADDR_LOOPBACK);
  CHECK_INT(lc_addr_class_of_url("http://[::ffff:a9fe:a9fe]/"), LC_ADDR_LINKLOCAL);
  CHECK_INT(lc_addr_class_of_url("http://[fe80::1]/"), LC_ADDR_LINKLOCAL);
  CHECK_INT(lc_addr_class_of_url("http://[fd00::1]/"), LC_ADDR_PRIVATE);
  CHECK_INT(lc_addr_class_of_url("http://[::]/"), LC_ADDR_SPECIAL);
  CHECK_INT(lc_addr_class_of_url("http://[2001:db8::1]/"), LC_ADDR_PUBLIC);
  CHECK_INT(lc_addr_class_of_url("http://localhost/"), LC_ADDR_LOOPBACK);
  CHECK_INT(lc_addr_class_of_url("http://LocalHost./"), LC_ADDR_LOOPBACK);
  CHECK_INT(lc_addr_class_of_url("http://a.b.localhost:80/"), LC_ADDR_LOOPBACK);
  CHECK_INT(lc_addr_class_of_url("http://example.com/"), LC_ADDR_NAME);
  CHECK_INT(lc_addr_class_of_url("http://1.2.3.4.example/"), LC_ADDR_NAME);
  CHECK_INT(lc_addr_class_of_url("file:///etc/passwd"), LC_ADDR_NOHOST);
  CHECK_INT(lc_addr_class_of_url("about:blank"), LC_ADDR_NOHOST);
}

int main(void) {
  RUN(ipv4_forms_read_as_a_browser_reads_them);
  RUN(ipv6_and_names);
  DONE();
}
