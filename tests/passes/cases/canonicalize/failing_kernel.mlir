// RUN: canonicalize
// 2 ** -1 has no integer value: the kernel raises, so the op is left to fail if it ever
// runs (here it sits in a branch that may never be taken), not at compile time.
func.func @main(%p: tensor<i1>) -> tensor<i32> {
  %two = "gj.constant"() {value = dense<2> : tensor<i32>} : () -> tensor<i32>
  %m1 = "gj.constant"() {value = dense<-1> : tensor<i32>} : () -> tensor<i32>
  %r = "gj.cond"(%p) ({
    %bad = "gj.pow"(%two, %m1) : (tensor<i32>, tensor<i32>) -> tensor<i32>
    "gj.yield"(%bad) : (tensor<i32>) -> ()
  }, {
    "gj.yield"(%two) : (tensor<i32>) -> ()
  }) : (tensor<i1>) -> tensor<i32>
  func.return %r : tensor<i32>
}
// CHECK: "gj.cond"(%arg0
// CHECK-NEXT: "gj.pow"(%0, %1
