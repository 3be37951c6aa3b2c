// RUN: canonicalize
// 2 ** -1 has no integer value: the kernel raises, so the op is left to fail if it ever
// runs (here it sits in a branch that may never be taken), not at compile time.
func @main(%p: tensor<i1>) {
  %two = constant {value = dense<2> : tensor<i32>} : () -> tensor<i32>
  %m1 = constant {value = dense<-1> : tensor<i32>} : () -> tensor<i32>
  %r = cond %p : (tensor<i1>) -> tensor<i32> {
    %bad = pow %two, %m1 : (tensor<i32>, tensor<i32>) -> tensor<i32>
    yield %bad : (tensor<i32>)
  } else {
    yield %two : (tensor<i32>)
  }
  return %r : (tensor<i32>)
}
// CHECK: cond %arg0
// CHECK-NEXT: pow %0, %1
